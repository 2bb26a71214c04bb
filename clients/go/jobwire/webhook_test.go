package jobwire_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jobwire/jobwire/clients/go/jobwire"
)

// webhookVectors is tests/vectors/webhook_signatures.json, shared by every
// SDK (see its generator beside it).
type webhookVectors struct {
	DefaultToleranceSeconds int64    `json:"default_tolerance_seconds"`
	ErrorKinds              []string `json:"error_kinds"`
	Cases                   []struct {
		Name             string            `json:"name"`
		Secrets          []string          `json:"secrets"`
		Headers          map[string]string `json:"headers"`
		Body             string            `json:"body"`
		Now              int64             `json:"now"`
		ToleranceSeconds *int64            `json:"tolerance_seconds"`
		Expected         string            `json:"expected"`
		MessageContains  string            `json:"message_contains"`
	} `json:"cases"`
}

func loadWebhookVectors(t *testing.T) webhookVectors {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "tests", "vectors", "webhook_signatures.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v webhookVectors
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Cases) == 0 {
		t.Fatal("no cases")
	}
	return v
}

func TestVerifyWebhookPassesEveryVector(t *testing.T) {
	v := loadWebhookVectors(t)
	for _, c := range v.Cases {
		t.Run(c.Name, func(t *testing.T) {
			// The names exactly as the vector spells them, not canonicalized,
			// so case-insensitive matching is what finds them.
			header := http.Header{}
			for k, val := range c.Headers {
				header[k] = []string{val}
			}
			tolerance := v.DefaultToleranceSeconds
			if c.ToleranceSeconds != nil {
				tolerance = *c.ToleranceSeconds
			}
			err := jobwire.VerifyWebhook([]byte(c.Body), header, c.Secrets,
				jobwire.WithTolerance(time.Duration(tolerance)*time.Second),
				jobwire.WithNow(time.Unix(c.Now, 0)))
			if c.Expected == "ok" {
				if err != nil {
					t.Fatalf("want ok, got %v", err)
				}
				return
			}
			var e *jobwire.WebhookVerificationError
			if !errors.As(err, &e) {
				t.Fatalf("want a *WebhookVerificationError (%s), got %v", c.Expected, err)
			}
			if string(e.Kind) != c.Expected {
				t.Fatalf("want %s, got %v", c.Expected, err)
			}
			if !strings.Contains(e.Message, c.MessageContains) {
				t.Fatalf("message %q does not name %q", e.Message, c.MessageContains)
			}
		})
	}
}

func TestWebhookVectorsCoverEveryErrorKind(t *testing.T) {
	v := loadWebhookVectors(t)
	seen := map[string]bool{}
	for _, c := range v.Cases {
		seen[c.Expected] = true
	}
	for _, k := range append([]string{"ok"}, v.ErrorKinds...) {
		if !seen[k] {
			t.Errorf("no case expects %s", k)
		}
	}
}

func TestVerifyWebhookDefaults(t *testing.T) {
	c := loadWebhookVectors(t).Cases[0] // the specification's example
	header := http.Header{}
	for k, val := range c.Headers {
		header.Set(k, val)
	}
	// Without WithNow the system clock is used: 2021 is long ago.
	err := jobwire.VerifyWebhook([]byte(c.Body), header, c.Secrets)
	var e *jobwire.WebhookVerificationError
	if !errors.As(err, &e) || e.Kind != jobwire.WebhookTimestampTooOld {
		t.Fatalf("want timestamp_too_old, got %v", err)
	}
	// The default tolerance is 5 minutes.
	sent := time.Unix(c.Now, 0)
	if err := jobwire.VerifyWebhook([]byte(c.Body), header, c.Secrets,
		jobwire.WithNow(sent.Add(5*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if err := jobwire.VerifyWebhook([]byte(c.Body), header, c.Secrets,
		jobwire.WithNow(sent.Add(5*time.Minute+time.Second))); err == nil {
		t.Fatal("verified 5 min 1 s after the timestamp")
	}
	// No secret at all is a caller's mistake, reported as such.
	err = jobwire.VerifyWebhook([]byte(c.Body), header, nil, jobwire.WithNow(sent))
	if !errors.As(err, &e) || e.Kind != jobwire.WebhookInvalidSecret {
		t.Fatalf("want invalid_secret, got %v", err)
	}
}
