// Package jobwire is the Go client of the jobwire job server: submit,
// read, control and watch jobs (Client), and run workers (Worker).
//
// Method names follow the RPCs (SubmitJob, WatchJob, ...) and return the
// generated messages of package jobwirev1. Every error is an *Error
// carrying the gRPC code and the server's details. Watches are iterators
// that resume on their own after a break, from the last cursor they
// yielded, so a caller sees every event once, in order:
//
//	c, err := jobwire.Dial("") // $JOBWIRE_ADDR, else DefaultAddr()
//	res, err := c.SubmitJob(ctx, &jobwirev1.Job{Kind: "resize"}, "upload-42")
//	for ev, err := range c.WatchJob(ctx, res.GetJob().GetId(), nil) { ... }
package jobwire

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	pb "github.com/jobwire/jobwire/clients/go/gen/jobwire/v1"
)

// DefaultAddr is where Dial("") connects when $JOBWIRE_ADDR is unset, and
// where jobwired serves by default: the same rule in every jobwire client.
// It depends on the user, not on the current folder:
//
//	unix:$XDG_RUNTIME_DIR/jobwire.sock   when XDG_RUNTIME_DIR is an absolute path
//	unix:/run/jobwire/jobwire.sock       else when running as root
//	unix:/tmp/jobwire-UID/jobwire.sock   else (UID: the effective user id)
func DefaultAddr() string {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); strings.HasPrefix(dir, "/") {
		if len(dir) > 1 {
			dir = strings.TrimSuffix(dir, "/")
		}
		return "unix:" + dir + "/jobwire.sock"
	}
	uid := os.Geteuid()
	if uid == 0 {
		return "unix:/run/jobwire/jobwire.sock"
	}
	return "unix:/tmp/jobwire-" + strconv.Itoa(uid) + "/jobwire.sock"
}

// Client is a connection to one jobwired. Safe for concurrent use.
type Client struct {
	conn    *grpc.ClientConn
	jobs    pb.JobServiceClient
	workers pb.WorkerServiceClient
}

// Option configures Dial.
type Option func(*dialOptions)

type dialOptions struct {
	token                     string
	caFile, certFile, keyFile string
	extra                     []grpc.DialOption
}

// WithTLS connects over TLS (a TCP address of a jobwired started with
// --tls-cert), trusting the PEM CA in caFile. certFile and keyFile, when
// not empty, are the client's PEM certificate and key for a server that
// asks for one (--tls-client-ca).
func WithTLS(caFile, certFile, keyFile string) Option {
	return func(o *dialOptions) { o.caFile, o.certFile, o.keyFile = caFile, certFile, keyFile }
}

// transportCredentials: plaintext, or TLS with WithTLS's files.
func (o *dialOptions) transportCredentials() (credentials.TransportCredentials, error) {
	if o.caFile == "" {
		return insecure.NewCredentials(), nil
	}
	pem, err := os.ReadFile(o.caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", o.caFile)
	}
	config := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if o.certFile != "" || o.keyFile != "" {
		pair, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
		if err != nil {
			return nil, err
		}
		config.Certificates = []tls.Certificate{pair}
	}
	return credentials.NewTLS(config), nil
}

// WithToken sends "authorization: Bearer TOKEN" on every call (default
// $JOBWIRE_TOKEN).
func WithToken(token string) Option { return func(o *dialOptions) { o.token = token } }

// WithDialOptions adds gRPC dial options.
func WithDialOptions(opts ...grpc.DialOption) Option {
	return func(o *dialOptions) { o.extra = append(o.extra, opts...) }
}

// bearer sends the token as metadata. Plaintext is allowed: jobwired's
// loopback and Unix listeners have no TLS.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

// Dial connects to addr: "unix:PATH", "unix:///ABS" or "HOST:PORT"; ""
// means $JOBWIRE_ADDR, else DefaultAddr. The connection is made lazily.
func Dial(addr string, opts ...Option) (*Client, error) {
	if addr == "" {
		addr = os.Getenv("JOBWIRE_ADDR")
	}
	if addr == "" {
		addr = DefaultAddr()
	}
	o := dialOptions{token: os.Getenv("JOBWIRE_TOKEN")}
	for _, opt := range opts {
		opt(&o)
	}
	creds, err := o.transportCredentials()
	if err != nil {
		return nil, &Error{Code: codes.InvalidArgument, Message: "WithTLS: " + err.Error()}
	}
	dial := []grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithChainUnaryInterceptor(unreachableHint(addr))}
	if o.token != "" {
		dial = append(dial, grpc.WithPerRPCCredentials(bearer(o.token)))
	}
	conn, err := grpc.NewClient(addr, append(dial, o.extra...)...)
	if err != nil {
		return nil, &Error{Code: codes.InvalidArgument, Message: err.Error()}
	}
	return &Client{conn: conn, jobs: pb.NewJobServiceClient(conn),
		workers: pb.NewWorkerServiceClient(conn)}, nil
}

// unreachableHint adds to an UNAVAILABLE or DEADLINE_EXCEEDED error of a
// unary call the address tried and how to choose another (the details, such
// as RetryInfo, are kept).
func unreachableHint(addr string) grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any,
		cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		err := invoker(ctx, method, req, reply, cc, opts...)
		st, ok := status.FromError(err)
		if err == nil || !ok || (st.Code() != codes.Unavailable && st.Code() != codes.DeadlineExceeded) {
			return err
		}
		p := st.Proto()
		p.Message += " (is jobwired serving " + addr + "? pass the address to Dial or set JOBWIRE_ADDR)"
		return status.FromProto(p).Err()
	}
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// SubmitJob submits job; it returns once the job is durable. With a
// requestID a retry returns the first job (Created false).
func (c *Client) SubmitJob(ctx context.Context, job *pb.Job, requestID string) (*pb.SubmitJobResponse, error) {
	r, err := c.jobs.SubmitJob(ctx, &pb.SubmitJobRequest{Job: job, RequestId: requestID})
	return r, fromRPC(err)
}

// GetJob returns one job.
func (c *Client) GetJob(ctx context.Context, id string) (*pb.Job, error) {
	r, err := c.jobs.GetJob(ctx, &pb.GetJobRequest{Id: id})
	return r, fromRPC(err)
}

// ListOptions are the optional parts of ListJobs.
type ListOptions struct {
	OrderBy  string
	PageSize int32
}

// ListJobs yields every job matching filter (AIP-160 subset), following
// the page tokens. It stops after yielding an error.
func (c *Client) ListJobs(ctx context.Context, filter string, opts ListOptions) iter.Seq2[*pb.Job, error] {
	return func(yield func(*pb.Job, error) bool) {
		token := ""
		for {
			page, err := c.jobs.ListJobs(ctx, &pb.ListJobsRequest{Filter: filter,
				OrderBy: opts.OrderBy, PageSize: opts.PageSize, PageToken: token})
			if err != nil {
				yield(nil, fromRPC(err))
				return
			}
			for _, j := range page.GetJobs() {
				if !yield(j, nil) {
					return
				}
			}
			if token = page.GetNextPageToken(); token == "" {
				return
			}
		}
	}
}

// CancelJob cancels a job (a running one once its worker stops it).
func (c *Client) CancelJob(ctx context.Context, id, reason string) (*pb.Job, error) {
	r, err := c.jobs.CancelJob(ctx, &pb.CancelJobRequest{Id: id, Reason: reason})
	return r, fromRPC(err)
}

// PauseJob holds a job in PAUSED (a running one at its next safe point).
func (c *Client) PauseJob(ctx context.Context, id string) (*pb.Job, error) {
	r, err := c.jobs.PauseJob(ctx, &pb.PauseJobRequest{Id: id})
	return r, fromRPC(err)
}

// ResumeJob makes a paused job QUEUED again.
func (c *Client) ResumeJob(ctx context.Context, id string) (*pb.Job, error) {
	r, err := c.jobs.ResumeJob(ctx, &pb.ResumeJobRequest{Id: id})
	return r, fromRPC(err)
}

// RetryJob runs a FAILED or CANCELLED job again.
func (c *Client) RetryJob(ctx context.Context, id string) (*pb.Job, error) {
	r, err := c.jobs.RetryJob(ctx, &pb.RetryJobRequest{Id: id})
	return r, fromRPC(err)
}

// UpdateJob writes the fields of job named by paths.
func (c *Client) UpdateJob(ctx context.Context, job *pb.Job, paths []string, etag string) (*pb.Job, error) {
	r, err := c.jobs.UpdateJob(ctx, &pb.UpdateJobRequest{Job: job,
		UpdateMask: &fieldmaskpb.FieldMask{Paths: paths}, Etag: etag})
	return r, fromRPC(err)
}

// ExplainJob says what holds a job back.
func (c *Client) ExplainJob(ctx context.Context, id string) (*pb.ExplainJobResponse, error) {
	r, err := c.jobs.ExplainJob(ctx, &pb.ExplainJobRequest{Id: id})
	return r, fromRPC(err)
}

// IsTerminal reports whether s is SUCCEEDED, FAILED or CANCELLED.
func IsTerminal(s pb.Job_State) bool {
	return s == pb.Job_STATE_SUCCEEDED || s == pb.Job_STATE_FAILED || s == pb.Job_STATE_CANCELLED
}

// WatchJob yields the events of one job, live, until its terminal event.
// With afterSeq nil the first event is a snapshot. After a break (a server
// restart or drain) it reconnects with backoff and resumes after the last
// seq yielded; a reset is followed by a fresh snapshot event. It stops after
// yielding a non-resumable error (NOT_FOUND, INVALID_ARGUMENT, or ctx's).
func (c *Client) WatchJob(ctx context.Context, id string, afterSeq *int64) iter.Seq2[*pb.JobEvent, error] {
	open := func(ctx context.Context, cursor *int64) (recvFunc, error) {
		s, err := c.jobs.WatchJob(ctx, &pb.WatchJobRequest{Id: id, AfterSeq: cursor})
		if err != nil {
			return nil, err
		}
		return recvEvents(s), nil
	}
	return resuming(ctx, open, afterSeq, (*pb.JobEvent).GetSeq, endsJob)
}

// WatchJobs yields the events of every job matching filter, live, until
// ctx ends. With afterEventID nil it starts from now (a break before the
// first event resumes from now again); with a cursor it replays what came
// after (0: every event the server keeps). Resumes after breaks from the
// last event_id yielded.
func (c *Client) WatchJobs(ctx context.Context, filter string, afterEventID *int64) iter.Seq2[*pb.JobEvent, error] {
	open := func(ctx context.Context, cursor *int64) (recvFunc, error) {
		s, err := c.jobs.WatchJobs(ctx, &pb.WatchJobsRequest{Filter: filter, AfterEventId: cursor})
		if err != nil {
			return nil, err
		}
		return recvEvents(s), nil
	}
	return resuming(ctx, open, afterEventID, (*pb.JobEvent).GetEventId,
		func(*pb.JobEvent) bool { return false })
}

// WaitJob blocks until the job ends and returns it as it ended.
func (c *Client) WaitJob(ctx context.Context, id string) (*pb.Job, error) {
	for _, err := range c.WatchJob(ctx, id, nil) {
		if err != nil {
			return nil, err
		}
	}
	return c.GetJob(ctx, id)
}

// recvFunc reads a watch stream's next message: its event, or nil for a
// heartbeat, draining or reset (a reset is followed by a snapshot event).
type recvFunc func() (*pb.JobEvent, error)

// recvEvents reads either watch stream: both responses carry the same oneof.
func recvEvents[M interface{ GetEvent() *pb.JobEvent }](s interface{ Recv() (M, error) }) recvFunc {
	return func() (*pb.JobEvent, error) {
		m, err := s.Recv()
		return m.GetEvent(), err
	}
}

func endsJob(ev *pb.JobEvent) bool {
	if sc := ev.GetStateChanged(); sc != nil {
		return IsTerminal(sc.GetTo())
	}
	if snap := ev.GetSnapshot(); snap != nil {
		return IsTerminal(snap.GetState())
	}
	return false
}

func resumable(code codes.Code) bool {
	switch code {
	case codes.Unavailable, codes.Internal, codes.Unknown, codes.ResourceExhausted:
		return true
	}
	return false
}

// resuming turns a watch into an iterator that reopens it after the last
// cursor yielded whenever it breaks with a resumable code.
func resuming(ctx context.Context, open func(context.Context, *int64) (recvFunc, error), cursor *int64,
	cursorOf func(*pb.JobEvent) int64, ends func(*pb.JobEvent) bool) iter.Seq2[*pb.JobEvent, error] {
	return func(yield func(*pb.JobEvent, error) bool) {
		b := backoff{next: 50 * time.Millisecond, max: 2 * time.Second}
		for {
			stopped, err := func() (bool, error) {
				ctx, cancel := context.WithCancel(ctx) // ends this stream on return
				defer cancel()
				recv, err := open(ctx, cursor)
				if err != nil {
					return false, err
				}
				for {
					ev, err := recv()
					if err != nil {
						return false, err
					}
					if ev == nil {
						continue
					}
					b.reset()
					at := cursorOf(ev)
					cursor = &at
					if !yield(ev, nil) || ends(ev) {
						return true, nil
					}
				}
			}()
			if stopped || err == io.EOF { // io.EOF: the server ended it OK
				return
			}
			e := fromRPC(err).(*Error)
			if ctx.Err() != nil || !resumable(e.Code) {
				yield(nil, e)
				return
			}
			if !b.sleep(ctx, e.RetryDelay) {
				yield(nil, fromRPC(ctx.Err()))
				return
			}
		}
	}
}

type backoff struct{ initial, next, max time.Duration }

func (b *backoff) reset() {
	if b.initial == 0 {
		b.initial = b.next
	}
	b.next = b.initial
}

// sleep waits the next delay (or hint) with ±20% jitter; false if ctx ended.
func (b *backoff) sleep(ctx context.Context, hint time.Duration) bool {
	if b.initial == 0 {
		b.initial = b.next
	}
	d := b.next
	if hint > 0 {
		d = hint
	}
	d = time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
	b.next = min(b.next*2, b.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
