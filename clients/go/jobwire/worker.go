package jobwire

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/jobwire/jobwire/clients/go/gen/jobwire/v1"
)

// Handler runs one attempt of a job. Its ctx ends when the job is
// cancelled or paused, when the attempt loses its lease, or when the worker
// stops past its grace; context.Cause(ctx) says which (ErrCancelled,
// ErrPaused, ErrLost). The result: a map[string]any (the job's result
// data), a []byte (its payload) or nil. A *JobFailed error with Retryable
// false ends the job FAILED; any other error is a retryable failure.
type Handler func(ctx context.Context, task *Task) (any, error)

// Why a Handler's ctx ended.
var (
	ErrCancelled = errors.New("jobwire: job cancelled")
	ErrPaused    = errors.New("jobwire: job paused")
	ErrLost      = errors.New("jobwire: attempt lost its lease")
)

// JobFailed fails an attempt with Message; Retryable false ends the job.
type JobFailed struct {
	Message   string
	Retryable bool
	Details   map[string]any
}

func (e *JobFailed) Error() string { return e.Message }

// Task is one attempt of one job, as its Handler sees it.
type Task struct {
	Job        *pb.Job
	Attempt    int32
	Checkpoint []byte // saved by an earlier attempt

	w      *Worker
	cancel context.CancelCauseFunc
	mu     sync.Mutex
	ack    bool // the stop wants an ack
	lost   bool // no report would be taken
	// reported: the handler's outcome is (being) sent
	reported bool
}

// Args returns the job's args as a map (JSON numbers are float64).
func (t *Task) Args() map[string]any { return t.Job.GetArgs().AsMap() }

// Progress reports progress (watchers see it live); log, if not empty, adds
// a log line.
func (t *Task) Progress(done, total int64, message, log string) {
	if t.isLost() {
		return
	}
	t.w.send(&pb.ConnectRequest{Kind: &pb.ConnectRequest_Progress{Progress: &pb.ReportProgress{
		JobId: t.Job.GetId(), Attempt: t.Attempt, Log: log,
		Progress: &pb.Progress{Done: done, Total: total, Message: message}}}})
}

// SaveCheckpoint saves data; a later attempt of the job gets it.
func (t *Task) SaveCheckpoint(data []byte) {
	if t.isLost() {
		return
	}
	t.w.send(&pb.ConnectRequest{Kind: &pb.ConnectRequest_Checkpoint{Checkpoint: &pb.Checkpoint{
		JobId: t.Job.GetId(), Attempt: t.Attempt, Data: data}}})
}

func (t *Task) isLost() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.lost
}

func (t *Task) stop(cause error, ack, lost bool) {
	t.mu.Lock()
	t.ack = t.ack || ack
	t.lost = t.lost || lost
	t.mu.Unlock()
	t.cancel(cause)
}

// WorkerOptions configure a Worker.
type WorkerOptions struct {
	Queues   []string // default ["default"]
	Slots    int      // jobs at once; default 1
	WorkerID string   // default host:pid
	Grace    time.Duration
}

// Worker runs Handlers for the jobs jobwired assigns over one
// WorkerService.Connect stream (docs/worker-protocol.md): a goroutine per
// running job, heartbeats, and reconnects with backoff when the stream ends
// (a server restart or drain).
type Worker struct {
	client   *Client
	opts     WorkerOptions
	handlers map[string]Handler

	mu     sync.Mutex
	active map[string]*Task // by job id + attempt
	idle   *sync.Cond
	sess   *session // the current stream's sender; nil between streams
}

// NewWorker returns a Worker on c.
func NewWorker(c *Client, opts WorkerOptions) *Worker {
	if len(opts.Queues) == 0 {
		opts.Queues = []string{"default"}
	}
	if opts.Slots < 1 {
		opts.Slots = 1
	}
	if opts.WorkerID == "" {
		host, _ := os.Hostname()
		opts.WorkerID = fmt.Sprintf("%s:%d", host, os.Getpid())
	}
	if opts.Grace == 0 {
		opts.Grace = 30 * time.Second
	}
	w := &Worker{client: c, opts: opts, handlers: map[string]Handler{},
		active: map[string]*Task{}}
	w.idle = sync.NewCond(&w.mu)
	return w
}

// Handle registers the Handler of kind. Call before Run.
func (w *Worker) Handle(kind string, h Handler) { w.handlers[kind] = h }

// Run serves until ctx ends, then stops gracefully: it takes no new jobs,
// gives running ones up to Grace to finish, and closes the stream once
// their reports are answered. It returns nil after such a stop, or an
// *Error when the server refuses the worker (INVALID_ARGUMENT,
// UNAUTHENTICATED, ...).
func (w *Worker) Run(ctx context.Context) error {
	if len(w.handlers) == 0 {
		return &Error{Code: codes.InvalidArgument, Message: "register a handler before Run"}
	}
	b := backoff{next: 100 * time.Millisecond, max: 5 * time.Second}
	for {
		err := w.serveOnce(ctx, &b)
		w.loseAll()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && !resumable(Code(err)) && Code(err) != codes.Canceled {
			return err
		}
		if !b.sleep(ctx, 0) {
			return nil
		}
	}
}

func (w *Worker) key(id string, attempt int32) string { return fmt.Sprintf("%s/%d", id, attempt) }

func (w *Worker) serveOnce(ctx context.Context, b *backoff) error {
	streamCtx, cancelStream := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStream()
	stream, err := w.client.workers.Connect(streamCtx)
	if err != nil {
		return fromRPC(err)
	}
	kinds := make([]string, 0, len(w.handlers))
	for k := range w.handlers {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	queues := make([]*pb.WorkerQueue, len(w.opts.Queues))
	for i, q := range w.opts.Queues {
		queues[i] = &pb.WorkerQueue{Name: q}
	}
	if err := stream.Send(&pb.ConnectRequest{Kind: &pb.ConnectRequest_Hello{Hello: &pb.Hello{
		WorkerId: w.opts.WorkerID, Queues: queues, Kinds: kinds, Slots: int32(w.opts.Slots)}}}); err != nil {
		_, err = stream.Recv()
		return fromRPC(err)
	}
	first, err := stream.Recv()
	if err != nil {
		return fromRPC(err)
	}
	heartbeat := first.GetWelcome().GetHeartbeatInterval().AsDuration()
	if heartbeat <= 0 {
		heartbeat = time.Second
	}
	b.reset()

	// One goroutine sends: reports from the handlers, heartbeats when idle,
	// and on ctx's end the graceful close (no new jobs, wait, CloseSend).
	sess := &session{out: make(chan *pb.ConnectRequest, 64), done: make(chan struct{})}
	w.mu.Lock()
	w.sess = sess
	w.mu.Unlock()
	go func() {
		defer close(sess.done)
		timer := time.NewTimer(heartbeat)
		defer timer.Stop()
		stopping := ctx.Done()
		for {
			var m *pb.ConnectRequest
			select {
			case m = <-sess.out:
				if m == nil {
					_ = stream.CloseSend()
					return
				}
			case <-timer.C:
				m = &pb.ConnectRequest{Kind: &pb.ConnectRequest_Heartbeat{Heartbeat: &pb.WorkerHeartbeat{}}}
			case <-stopping:
				stopping = nil
				m = &pb.ConnectRequest{Kind: &pb.ConnectRequest_Ready{Ready: &pb.Ready{Slots: -int32(w.opts.Slots)}}}
				go func() {
					if !w.waitIdle(w.opts.Grace) {
						cancelStream() // jobs still running past the grace
					}
					sess.send(nil)
				}()
			case <-streamCtx.Done():
				return
			}
			if stream.Send(m) != nil {
				return
			}
			timer.Reset(heartbeat)
		}
	}()

	for {
		msg, err := stream.Recv()
		if err != nil {
			w.mu.Lock()
			w.sess = nil
			w.mu.Unlock()
			cancelStream()
			<-sess.done
			if err == io.EOF { // the server ended the stream OK
				return nil
			}
			return fromRPC(err)
		}
		switch k := msg.GetKind().(type) {
		case *pb.ConnectResponse_Assign:
			w.start(ctx, k.Assign)
		case *pb.ConnectResponse_Cancel:
			noAck := k.Cancel.GetReason() == "lease expired" || k.Cancel.GetReason() == "attempt timeout"
			cause := ErrCancelled
			if noAck {
				cause = ErrLost
			}
			w.stopTask(k.Cancel.GetJobId(), k.Cancel.GetAttempt(), cause, !noAck, noAck)
		case *pb.ConnectResponse_Pause:
			w.stopTask(k.Pause.GetJobId(), k.Pause.GetAttempt(), ErrPaused, true, false)
		case *pb.ConnectResponse_Rejected:
			w.onRejected(k.Rejected)
		}
	}
}

func (w *Worker) send(m *pb.ConnectRequest) {
	w.mu.Lock()
	sess := w.sess
	w.mu.Unlock()
	if sess != nil {
		sess.send(m)
	}
}

// session is one stream's sender: out feeds it (nil: close the stream),
// done closes when it has stopped.
type session struct {
	out  chan *pb.ConnectRequest
	done chan struct{}
}

func (s *session) send(m *pb.ConnectRequest) {
	select {
	case s.out <- m:
	case <-s.done: // the stream is gone; its attempts are lost anyway
	}
}

func (w *Worker) waitIdle(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() {
		w.mu.Lock()
		for len(w.active) > 0 {
			w.idle.Wait()
		}
		w.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (w *Worker) start(ctx context.Context, a *pb.Assign) {
	jobCtx, cancel := context.WithCancelCause(context.WithoutCancel(ctx))
	t := &Task{Job: a.GetJob(), Attempt: a.GetAttempt(), Checkpoint: a.GetCheckpoint(),
		w: w, cancel: cancel}
	key := w.key(t.Job.GetId(), t.Attempt)
	w.mu.Lock()
	w.active[key] = t
	w.mu.Unlock()
	go func() {
		defer func() {
			cancel(nil)
			w.mu.Lock()
			delete(w.active, key)
			w.idle.Broadcast()
			w.mu.Unlock()
		}()
		report := w.run(jobCtx, t)
		t.mu.Lock()
		t.reported = true
		lost, ack := t.lost, t.ack
		t.mu.Unlock()
		if lost {
			return
		}
		if ack {
			report = &pb.ConnectRequest{Kind: &pb.ConnectRequest_Ack{Ack: &pb.Ack{
				JobId: t.Job.GetId(), Attempt: t.Attempt, Stopped: true}}}
		}
		w.send(report)
	}()
}

// maxRefusalBytes is the most of a refusal's message that the fail
// answering it carries.
const maxRefusalBytes = 4096

// onRejected handles a report the server refused. A stale attempt
// (ABORTED, NOT_FOUND) stops its task. A refused outcome (INVALID_ARGUMENT,
// e.g. a result over 1 MiB) would leave the job RUNNING while heartbeats
// renew its lease: it is answered with a retryable fail carrying the
// refusal, so the job is retried per its policy or ends FAILED
// (docs/worker-protocol.md). A refused progress or checkpoint of a running
// handler changed nothing; the handler goes on.
func (w *Worker) onRejected(r *pb.Rejected) {
	// InvalidArgument (a field over its limit) and ResourceExhausted (the
	// message over the server's request limit) refuse the report only.
	if c := codes.Code(r.GetCode()); c != codes.InvalidArgument && c != codes.ResourceExhausted {
		w.stopTask(r.GetJobId(), r.GetAttempt(), ErrLost, false, true)
		return
	}
	w.mu.Lock()
	t := w.active[w.key(r.GetJobId(), r.GetAttempt())]
	w.mu.Unlock()
	if t != nil {
		t.mu.Lock()
		reported := t.reported
		t.mu.Unlock()
		if !reported {
			return
		}
	}
	message := r.GetMessage()
	if len(message) > maxRefusalBytes {
		message = strings.ToValidUTF8(message[:maxRefusalBytes], "")
	}
	w.send(&pb.ConnectRequest{Kind: &pb.ConnectRequest_Fail{Fail: &pb.Fail{
		JobId: r.GetJobId(), Attempt: r.GetAttempt(), Retryable: true,
		Error: &pb.JobError{Code: r.GetCode(), Retryable: true,
			Message: "the server refused the worker's report: " + message}}}})
}

func (w *Worker) stopTask(id string, attempt int32, cause error, ack, lost bool) {
	w.mu.Lock()
	t := w.active[w.key(id, attempt)]
	w.mu.Unlock()
	if t != nil {
		t.stop(cause, ack, lost)
	}
}

func (w *Worker) loseAll() {
	w.mu.Lock()
	tasks := make([]*Task, 0, len(w.active))
	for _, t := range w.active {
		tasks = append(tasks, t)
	}
	w.mu.Unlock()
	for _, t := range tasks {
		t.stop(ErrLost, false, true)
	}
}

// run calls the handler and turns its outcome into the report to send.
func (w *Worker) run(ctx context.Context, t *Task) (report *pb.ConnectRequest) {
	id, attempt := t.Job.GetId(), t.Attempt
	fail := func(message string, retryable bool, details map[string]any) *pb.ConnectRequest {
		e := &pb.JobError{Message: message, Retryable: retryable}
		if details != nil {
			if s, err := structpb.NewStruct(details); err == nil {
				e.Details = s
			}
		}
		return &pb.ConnectRequest{Kind: &pb.ConnectRequest_Fail{Fail: &pb.Fail{
			JobId: id, Attempt: attempt, Error: e, Retryable: retryable}}}
	}
	h := w.handlers[t.Job.GetKind()]
	if h == nil {
		return fail(fmt.Sprintf("no handler for kind %q", t.Job.GetKind()), false, nil)
	}
	defer func() {
		if r := recover(); r != nil { // a handler's bug: retry, say what it was
			report = fail(fmt.Sprintf("panic: %v", r), true, nil)
		}
	}()
	value, err := h(ctx, t)
	if err != nil {
		var jf *JobFailed
		if errors.As(err, &jf) {
			return fail(jf.Message, jf.Retryable, jf.Details)
		}
		return fail(err.Error(), true, nil)
	}
	result := &pb.JobResult{}
	switch v := value.(type) {
	case nil:
	case []byte:
		result.Payload = v
	case map[string]any:
		s, err := structpb.NewStruct(v)
		if err != nil {
			return fail("result: "+err.Error(), false, nil)
		}
		result.Data = s
	default:
		return fail(fmt.Sprintf("result: a %T is neither map[string]any nor []byte", v), false, nil)
	}
	return &pb.ConnectRequest{Kind: &pb.ConnectRequest_Complete{Complete: &pb.Complete{
		JobId: id, Attempt: attempt, Result: result}}}
}
