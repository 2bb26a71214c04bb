package jobwire

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultWebhookTolerance is how far a webhook-timestamp may lie before or
// after the receiver's clock.
const DefaultWebhookTolerance = 5 * time.Minute

// WebhookErrorKind says what failed in a webhook verification; the same
// words in every jobwire SDK.
type WebhookErrorKind string

const (
	WebhookInvalidSecret       WebhookErrorKind = "invalid_secret" // a secret is not base64
	WebhookMissingHeader       WebhookErrorKind = "missing_header"
	WebhookInvalidTimestamp    WebhookErrorKind = "invalid_timestamp"
	WebhookTimestampTooOld     WebhookErrorKind = "timestamp_too_old"
	WebhookTimestampTooNew     WebhookErrorKind = "timestamp_too_new"
	WebhookNoMatchingSignature WebhookErrorKind = "no_matching_signature"
)

// WebhookVerificationError is what VerifyWebhook returns for a webhook that
// did not verify: Kind says what failed, Message names the header or the
// times involved (never a secret).
type WebhookVerificationError struct {
	Kind    WebhookErrorKind
	Message string
}

func (e *WebhookVerificationError) Error() string { return string(e.Kind) + ": " + e.Message }

type webhookOptions struct {
	tolerance time.Duration
	now       time.Time
}

// WebhookOption configures VerifyWebhook.
type WebhookOption func(*webhookOptions)

// WithTolerance sets how far webhook-timestamp may be from now, in either
// direction, edges included (default DefaultWebhookTolerance).
func WithTolerance(d time.Duration) WebhookOption {
	return func(o *webhookOptions) { o.tolerance = d }
}

// WithNow sets the receiver's clock (default time.Now()), for tests and for
// checking a stored request.
func WithNow(t time.Time) WebhookOption { return func(o *webhookOptions) { o.now = t } }

// VerifyWebhook checks that body and header are a webhook signed after the
// Standard Webhooks specification with one of secrets, as jobwired sends
// them: webhook-id, webhook-timestamp (unix seconds) and webhook-signature,
// space-separated "v1,<base64 HMAC-SHA256 of id.timestamp.body>" entries
// (one per secret the sender holds; other versions are ignored).
//
// body is the request body exactly as received. header names match
// case-insensitively, whatever their spelling in the map. Each secret is
// "whsec_<base64 key>" or the base64 key alone (padding optional); a
// receiver in the middle of a rotation passes both, and a signature by
// either is accepted. Signatures are compared in constant time.
//
// Returns nil when the webhook verifies, else a *WebhookVerificationError;
// checks run in this order: the secrets, the headers, the timestamp's form
// and window, then the signatures. Safe for concurrent use.
func VerifyWebhook(body []byte, header http.Header, secrets []string, opts ...WebhookOption) error {
	o := webhookOptions{tolerance: DefaultWebhookTolerance}
	for _, opt := range opts {
		opt(&o)
	}
	if o.now.IsZero() {
		o.now = time.Now()
	}
	if len(secrets) == 0 {
		return &WebhookVerificationError{WebhookInvalidSecret, "no secret given"}
	}
	keys := make([][]byte, len(secrets))
	for i, s := range secrets {
		k, err := webhookKey(s)
		if err != nil {
			return &WebhookVerificationError{WebhookInvalidSecret,
				fmt.Sprintf("secret %d is not whsec_ followed by a base64 key", i+1)}
		}
		keys[i] = k
	}
	id, ok := webhookHeader(header, "webhook-id")
	if !ok {
		return missingHeader("webhook-id")
	}
	timestamp, ok := webhookHeader(header, "webhook-timestamp")
	if !ok {
		return missingHeader("webhook-timestamp")
	}
	signatures, ok := webhookHeader(header, "webhook-signature")
	if !ok {
		return missingHeader("webhook-signature")
	}

	sent, err := parseUnixSeconds(timestamp)
	if err != nil {
		shown := timestamp
		if len(shown) > 40 {
			shown = shown[:40]
		}
		return &WebhookVerificationError{WebhookInvalidTimestamp,
			fmt.Sprintf("header webhook-timestamp is not unix seconds: %q", shown)}
	}
	// In seconds, as the header is; float64 keeps sub-second clocks exact
	// enough and cannot overflow.
	now := float64(o.now.UnixNano()) / 1e9
	tolerance := o.tolerance.Seconds()
	if float64(sent) < now-tolerance {
		return &WebhookVerificationError{WebhookTimestampTooOld,
			fmt.Sprintf("webhook-timestamp %d is %.0f s old, more than the %g s tolerance",
				sent, now-float64(sent), tolerance)}
	}
	if float64(sent) > now+tolerance {
		return &WebhookVerificationError{WebhookTimestampTooNew,
			fmt.Sprintf("webhook-timestamp %d is %.0f s in the future, more than the %g s tolerance",
				sent, float64(sent)-now, tolerance)}
	}

	expected := make([][]byte, len(keys))
	for i, k := range keys {
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(id + "." + timestamp + "."))
		mac.Write(body)
		expected[i] = []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))
	}
	matched := false
	for _, entry := range strings.Split(signatures, " ") {
		version, signature, found := strings.Cut(entry, ",")
		if !found || version != "v1" {
			continue
		}
		for _, e := range expected { // every comparison runs: no early exit
			if hmac.Equal(e, []byte(signature)) {
				matched = true
			}
		}
	}
	if !matched {
		return &WebhookVerificationError{WebhookNoMatchingSignature,
			"no v1 signature in webhook-signature matches a secret"}
	}
	return nil
}

func missingHeader(name string) error {
	return &WebhookVerificationError{WebhookMissingHeader, "missing header " + name}
}

// webhookHeader returns the first value of the header named name (matched
// case-insensitively, since a map literal need not use canonical keys); an
// empty value counts as missing.
func webhookHeader(header http.Header, name string) (string, bool) {
	if v := header.Get(name); v != "" {
		return v, true
	}
	for k, vs := range header {
		if strings.EqualFold(k, name) && len(vs) > 0 && vs[0] != "" {
			return vs[0], true
		}
	}
	return "", false
}

// webhookKey decodes a secret: "whsec_" and then standard base64, with or
// without its '=' padding.
func webhookKey(secret string) ([]byte, error) {
	text := strings.TrimPrefix(secret, "whsec_")
	if n := len(text) % 4; n != 0 {
		text += strings.Repeat("=", 4-n)
	}
	// Go's decoder skips '\r' and '\n'; a secret never holds them.
	if strings.ContainsAny(text, "\r\n") {
		return nil, fmt.Errorf("newline in secret")
	}
	key, err := base64.StdEncoding.DecodeString(text)
	if err != nil || len(key) == 0 {
		return nil, fmt.Errorf("not base64")
	}
	return key, nil
}

// parseUnixSeconds accepts 1 to 18 decimal digits, nothing else (no sign,
// no spaces, no fraction).
func parseUnixSeconds(s string) (int64, error) {
	if len(s) == 0 || len(s) > 18 {
		return 0, fmt.Errorf("bad length")
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("not a digit")
		}
	}
	return strconv.ParseInt(s, 10, 64)
}
