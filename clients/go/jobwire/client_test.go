package jobwire_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/structpb"

	pb "github.com/jobwire/jobwire/clients/go/gen/jobwire/v1"
	"github.com/jobwire/jobwire/clients/go/jobwire"
)

func dial(t *testing.T, s *server, opts ...jobwire.Option) *jobwire.Client {
	t.Helper()
	c, err := jobwire.Dial(s.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSubmitGetListCancel(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	ctx := testCtx(t)
	args, _ := structpb.NewStruct(map[string]any{"to": "a@example.com"})
	first, err := c.SubmitJob(ctx, &pb.Job{Kind: "email", Queue: "mail", Args: args,
		Labels: map[string]string{"team": "growth"}}, "req-1")
	if err != nil || !first.GetCreated() {
		t.Fatalf("submit: %v %v", first, err)
	}
	again, err := c.SubmitJob(ctx, &pb.Job{Kind: "email", Queue: "mail"}, "req-1")
	if err != nil || again.GetCreated() || again.GetJob().GetId() != first.GetJob().GetId() {
		t.Fatalf("retried submit: %v %v", again, err)
	}
	id := first.GetJob().GetId()
	got, err := c.GetJob(ctx, id)
	if err != nil || got.GetArgs().AsMap()["to"] != "a@example.com" {
		t.Fatalf("get: %v %v", got, err)
	}
	for range 4 {
		if _, err := c.SubmitJob(ctx, &pb.Job{Kind: "report", Queue: "mail"}, ""); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for j, err := range c.ListJobs(ctx, `queue = "mail"`, jobwire.ListOptions{PageSize: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		if j.GetQueue() != "mail" {
			t.Fatalf("listed %v", j)
		}
		n++
	}
	if n != 5 {
		t.Fatalf("listed %d jobs over pages of 2, want 5", n)
	}
	cancelled, err := c.CancelJob(ctx, id, "not needed")
	if err != nil || cancelled.GetState() != pb.Job_STATE_CANCELLED {
		t.Fatalf("cancel: %v %v", cancelled, err)
	}
}

func TestBadInputIsAnErrorNamingTheField(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	ctx := testCtx(t)
	_, err := c.SubmitJob(ctx, &pb.Job{Queue: "Bad Queue"}, "")
	var e *jobwire.Error
	if !errors.As(err, &e) || e.Code != codes.InvalidArgument {
		t.Fatalf("got %v, want INVALID_ARGUMENT", err)
	}
	fields := map[string]bool{}
	for _, v := range e.Violations {
		fields[v.Field] = true
	}
	if !fields["job.kind"] || !fields["job.queue"] {
		t.Fatalf("violations %v, want job.kind and job.queue", e.Violations)
	}
	if _, err := c.GetJob(ctx, "01M9715MHTFBGAGMKPGD3MGD0W"); jobwire.Code(err) != codes.NotFound {
		t.Fatalf("get of an unknown id: %v", err)
	}
	for _, err := range c.ListJobs(ctx, "state = = RUNNING", jobwire.ListOptions{}) {
		if jobwire.Code(err) != codes.InvalidArgument {
			t.Fatalf("bad filter: %v", err)
		}
	}
}

func TestWorkerRunsHandlersAndWatchResumesAcrossARestart(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	ctx := testCtx(t)
	args, _ := structpb.NewStruct(map[string]any{"n": 6})
	res, err := c.SubmitJob(ctx, &pb.Job{Kind: "steps", Args: args}, "")
	if err != nil {
		t.Fatal(err)
	}
	id := res.GetJob().GetId()

	var seen []*pb.JobEvent
	watched := make(chan error, 1)
	go func() {
		for ev, err := range c.WatchJob(ctx, id, nil) {
			if err != nil {
				watched <- err
				return
			}
			seen = append(seen, ev)
		}
		watched <- nil
	}()

	step := make(chan struct{}, 1)
	release := make(chan struct{})
	w := jobwire.NewWorker(c, jobwire.WorkerOptions{Grace: 5 * time.Second})
	w.Handle("steps", func(ctx context.Context, task *jobwire.Task) (any, error) {
		n := int64(task.Args()["n"].(float64))
		for i := int64(1); i <= n; i++ {
			task.Progress(i, n, "", "")
			if i == 3 {
				select {
				case step <- struct{}{}:
				default:
				}
				<-release
			}
		}
		return map[string]any{"steps": n}, nil
	})
	wctx, stopWorker := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.Run(wctx) }()

	<-step
	// Mid-job the server stops: at the end of its grace the job goes back
	// to its queue; after the restart the worker runs it again and the watch
	// resumes from its cursor.
	s.stop()
	time.Sleep(time.Second) // down for a while: reconnects fail meanwhile
	s.start()
	close(release)
	if err := <-watched; err != nil {
		t.Fatalf("watch: %v", err)
	}
	stopWorker()
	wg.Wait()

	var states []pb.Job_State
	for i, ev := range seen {
		if ev.GetSeq() != seen[0].GetSeq()+int64(i) {
			t.Fatalf("seq %d at %d: a gap or a duplicate", ev.GetSeq(), i)
		}
		if sc := ev.GetStateChanged(); sc != nil {
			states = append(states, sc.GetTo())
		}
	}
	want := []pb.Job_State{pb.Job_STATE_RUNNING, pb.Job_STATE_QUEUED, pb.Job_STATE_RUNNING, pb.Job_STATE_SUCCEEDED}
	if len(states) != len(want) {
		t.Fatalf("states %v, want %v", states, want)
	}
	for i := range want {
		if states[i] != want[i] {
			t.Fatalf("states %v, want %v", states, want)
		}
	}
	job, err := c.GetJob(ctx, id)
	if err != nil || job.GetResult().GetData().AsMap()["steps"] != float64(6) {
		t.Fatalf("result: %v %v", job, err)
	}
}

func TestWorkerFailsRetriesAndStopsOnCancel(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	ctx := testCtx(t)
	w := jobwire.NewWorker(c, jobwire.WorkerOptions{Slots: 2, Grace: 5 * time.Second})
	w.Handle("bad", func(context.Context, *jobwire.Task) (any, error) {
		return nil, &jobwire.JobFailed{Message: "input is wrong", Details: map[string]any{"field": "a"}}
	})
	w.Handle("flaky", func(_ context.Context, t *jobwire.Task) (any, error) {
		if t.Attempt == 1 {
			return nil, errors.New("transient")
		}
		return []byte{1, 2}, nil
	})
	started := make(chan struct{}, 1)
	w.Handle("long", func(ctx context.Context, _ *jobwire.Task) (any, error) {
		started <- struct{}{}
		<-ctx.Done()
		if !errors.Is(context.Cause(ctx), jobwire.ErrCancelled) {
			return nil, errors.New("stopped for the wrong reason")
		}
		return nil, nil
	})
	wctx, stopWorker := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()

	submit := func(kind string) string {
		r, err := c.SubmitJob(ctx, &pb.Job{Kind: kind}, "")
		if err != nil {
			t.Fatal(err)
		}
		return r.GetJob().GetId()
	}
	bad, flaky := submit("bad"), submit("flaky")
	if j, _ := c.WaitJob(ctx, bad); j.GetState() != pb.Job_STATE_FAILED ||
		j.GetError().GetMessage() != "input is wrong" || j.GetError().GetRetryable() ||
		j.GetError().GetDetails().AsMap()["field"] != "a" {
		t.Fatalf("bad: %v", j)
	}
	if j, _ := c.WaitJob(ctx, flaky); j.GetState() != pb.Job_STATE_SUCCEEDED ||
		string(j.GetResult().GetPayload()) != "\x01\x02" || j.GetAttempt() != 2 {
		t.Fatalf("flaky: %v", j)
	}
	long := submit("long")
	<-started
	if _, err := c.CancelJob(ctx, long, "changed my mind"); err != nil {
		t.Fatal(err)
	}
	if j, _ := c.WaitJob(ctx, long); j.GetState() != pb.Job_STATE_CANCELLED {
		t.Fatalf("long: %v", j)
	}
	stopWorker()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// #27: a result over the server's 1 MiB cap is refused; the worker fails
// the attempt with the refusal rather than leave the job RUNNING while its
// heartbeats renew the lease.
func TestARefusedResultFailsTheAttemptWithTheRefusal(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	ctx := testCtx(t)
	w := jobwire.NewWorker(c, jobwire.WorkerOptions{Grace: 5 * time.Second})
	w.Handle("big", func(context.Context, *jobwire.Task) (any, error) {
		return make([]byte, 2<<20), nil
	})
	wctx, stopWorker := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	r, err := c.SubmitJob(ctx, &pb.Job{Kind: "big", MaxAttempts: 1}, "")
	if err != nil {
		t.Fatal(err)
	}
	j, err := c.WaitJob(ctx, r.GetJob().GetId())
	if err != nil {
		t.Fatal(err)
	}
	if j.GetState() != pb.Job_STATE_FAILED || j.GetError().GetCode() != 3 ||
		!strings.Contains(j.GetError().GetMessage(), "at most 1048576") {
		t.Fatalf("big: state %v error %v", j.GetState(), j.GetError())
	}
	stopWorker()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

func TestTokenGoesOnEveryCallAndStream(t *testing.T) {
	s := startServer(t, "--auth-token=s3cret")
	ctx := testCtx(t)
	if _, err := dial(t, s, jobwire.WithToken("")).SubmitJob(ctx, &pb.Job{Kind: "k"}, ""); jobwire.Code(err) != codes.Unauthenticated {
		t.Fatalf("without a token: %v", err)
	}
	c := dial(t, s, jobwire.WithToken("s3cret"))
	r, err := c.SubmitJob(ctx, &pb.Job{Kind: "k"}, "")
	if err != nil {
		t.Fatal(err)
	}
	w := jobwire.NewWorker(c, jobwire.WorkerOptions{})
	w.Handle("k", func(context.Context, *jobwire.Task) (any, error) { return map[string]any{"ok": true}, nil })
	wctx, stopWorker := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(wctx) }()
	if j, err := c.WaitJob(ctx, r.GetJob().GetId()); err != nil || j.GetState() != pb.Job_STATE_SUCCEEDED {
		t.Fatalf("job: %v %v", j, err)
	}
	stopWorker()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSubmitJobsYieldsIdsInOrderAndReadsAheadBoundedly(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	ctx := testCtx(t)
	var mu sync.Mutex
	read := 0
	source := func(yield func(*pb.SubmitJobRequest) bool) {
		for i := range 95 {
			mu.Lock()
			read++
			mu.Unlock()
			if !yield(&pb.SubmitJobRequest{Job: &pb.Job{Kind: "many", Labels: map[string]string{"i": strconv.Itoa(i)}}}) {
				return
			}
		}
	}
	var ids []string
	readAtFirst := -1
	for id, err := range c.SubmitJobs(ctx, source, jobwire.SubmitJobsOptions{BatchSize: 10, MaxInFlight: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		if ids == nil {
			mu.Lock()
			readAtFirst = read
			mu.Unlock()
		}
		ids = append(ids, id)
	}
	if len(ids) != 95 {
		t.Fatalf("got %d ids", len(ids))
	}
	for _, i := range []int{0, 94} {
		j, err := c.GetJob(ctx, ids[i])
		if err != nil || j.GetLabels()["i"] != strconv.Itoa(i) {
			t.Fatalf("id %d: %v %v", i, j, err)
		}
	}
	// Back-pressure: the batch in flight, the next and one more being filled.
	if readAtFirst > 31 {
		t.Fatalf("read %d jobs before the first answer", readAtFirst)
	}
	bad := func(yield func(*pb.SubmitJobRequest) bool) { yield(&pb.SubmitJobRequest{Job: &pb.Job{}}) }
	for _, err := range c.SubmitJobs(ctx, bad, jobwire.SubmitJobsOptions{}) {
		if jobwire.Code(err) != codes.InvalidArgument {
			t.Fatalf("want INVALID_ARGUMENT, got %v", err)
		}
	}
}

// #27: six jobs of 900 KiB are 5.4 MiB, over the server's default 4 MiB
// request limit as one batch; SubmitJobs splits them.
func TestSubmitJobsSplitsBatchesUnderTheByteLimit(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	ctx := testCtx(t)
	jobs := func(yield func(*pb.SubmitJobRequest) bool) {
		for range 6 {
			if !yield(&pb.SubmitJobRequest{Job: &pb.Job{Kind: "big", Payload: make([]byte, 900<<10)}}) {
				return
			}
		}
	}
	n := 0
	for _, err := range c.SubmitJobs(ctx, jobs, jobwire.SubmitJobsOptions{}) {
		if err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n != 6 {
		t.Fatalf("%d ids, want 6", n)
	}
}

func TestBulkUpdateJobsAndAdmin(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	ctx := testCtx(t)
	var ids []string
	for range 3 {
		r, err := c.SubmitJob(ctx, &pb.Job{Kind: "bulk", Queue: "bulkq"}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.GetJob().GetId())
	}
	cancel := pb.BulkUpdateJobsRequest_ACTION_CANCEL
	dry, err := c.BulkUpdateJobs(ctx, &pb.BulkUpdateJobsRequest{
		Selector: &pb.BulkUpdateJobsRequest_Filter{Filter: `queue = "bulkq"`}, Action: cancel, DryRun: true})
	if err != nil || dry.GetMatched() != 3 || dry.GetUpdated() != 3 {
		t.Fatalf("dry run: %v %v", dry, err)
	}
	done, err := c.BulkUpdateJobs(ctx, &pb.BulkUpdateJobsRequest{
		Selector: &pb.BulkUpdateJobsRequest_Ids_{Ids: &pb.BulkUpdateJobsRequest_Ids{Ids: ids[:2]}}, Action: cancel})
	if err != nil || done.GetUpdated() != 2 || done.GetFailed() != 0 {
		t.Fatalf("cancel: %v %v", done, err)
	}
	if j, _ := c.GetJob(ctx, ids[1]); j.GetState() != pb.Job_STATE_CANCELLED {
		t.Fatalf("state %v", j.GetState())
	}
	info, err := c.Admin().GetServerInfo(ctx, &pb.GetServerInfoRequest{})
	if err != nil || info.GetVersion() != jobwire.Version {
		t.Fatalf("server info: %v %v", info, err)
	}
	q, err := c.Admin().PauseQueue(ctx, &pb.PauseQueueRequest{Name: "adminq"})
	if err != nil || !q.GetPaused() {
		t.Fatalf("pause queue: %v %v", q, err)
	}
}
