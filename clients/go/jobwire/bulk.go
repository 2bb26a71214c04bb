package jobwire

import (
	"context"
	"errors"
	"io"
	"iter"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	pb "github.com/jobwire/jobwire/clients/go/gen/jobwire/v1"
)

// SubmitJobsOptions are the optional parts of SubmitJobs.
type SubmitJobsOptions struct {
	BatchSize   int // jobs per batch, 1 to 1000; default 1000
	MaxInFlight int // batches sent and not yet answered; default 4
	// BatchBytes: the most bytes (as protobuf) of one batch; default
	// DefaultBatchBytes. A batch ends early rather than pass it; a larger
	// job goes alone (and the server answers RESOURCE_EXHAUSTED, reason
	// REQUEST_TOO_LARGE, naming the limit).
	BatchBytes int
}

// DefaultBatchBytes is jobwired's default --max-receive-message-bytes; lower
// SubmitJobsOptions.BatchBytes for a server with a lower limit.
const DefaultBatchBytes = 4 << 20

// batchEntryBytes is what job adds to a SubmitJobsRequest: its tag, length
// and bytes.
func batchEntryBytes(job *pb.SubmitJobRequest) int {
	n := proto.Size(job)
	return 1 + protowire.SizeVarint(uint64(n)) + n
}

// SubmitJobs submits many jobs over one SubmitJobs stream and yields each
// job's id, in order, once its batch is durable. jobs is read lazily (on a
// goroutine of its own), BatchSize to a batch. Back-pressure: at most
// MaxInFlight batches are sent and not yet answered; reading jobs waits for
// the server meanwhile, so a large or endless source costs bounded memory.
// The first refused batch ends the iteration with its *Error (the batches
// before it are in); with request ids, submitting again is safe. Stopping
// the loop early cancels the stream.
func (c *Client) SubmitJobs(ctx context.Context, jobs iter.Seq[*pb.SubmitJobRequest], opts SubmitJobsOptions) iter.Seq2[string, error] {
	if opts.BatchSize == 0 {
		opts.BatchSize = 1000
	}
	if opts.MaxInFlight == 0 {
		opts.MaxInFlight = 4
	}
	if opts.BatchBytes <= 0 {
		opts.BatchBytes = DefaultBatchBytes
	}
	return func(yield func(string, error) bool) {
		if opts.BatchSize < 1 || opts.BatchSize > 1000 || opts.MaxInFlight < 1 {
			yield("", errors.New("jobwire: SubmitJobs: BatchSize must be 1 to 1000, MaxInFlight at least 1"))
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		stream, err := c.jobs.SubmitJobs(ctx)
		if err != nil {
			yield("", fromRPC(err))
			return
		}
		window := make(chan struct{}, opts.MaxInFlight)
		go func() {
			send := func(batch []*pb.SubmitJobRequest) bool {
				select {
				case window <- struct{}{}:
				case <-ctx.Done():
					return false
				}
				// A failed Send means the stream ended: Recv reports why.
				return stream.Send(&pb.SubmitJobsRequest{Jobs: batch}) == nil
			}
			var batch []*pb.SubmitJobRequest
			size := 0 // bytes of batch
			for job := range jobs {
				entry := batchEntryBytes(job)
				if len(batch) > 0 && size+entry > opts.BatchBytes {
					if !send(batch) {
						return
					}
					batch, size = nil, 0
				}
				batch = append(batch, job)
				size += entry
				if len(batch) == opts.BatchSize {
					if !send(batch) {
						return
					}
					batch, size = nil, 0
				}
			}
			if len(batch) > 0 && !send(batch) {
				return
			}
			stream.CloseSend() //nolint:errcheck // Recv reports the outcome
		}()
		for {
			res, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield("", fromRPC(err))
				return
			}
			<-window
			for _, id := range res.GetIds() {
				if !yield(id, nil) {
					return
				}
			}
		}
	}
}

// BulkUpdateJobs applies one change to the jobs req selects (by ids or a
// ListJobs filter): a patch with its update mask, or an action (cancel,
// pause, resume, retry, delete). It returns the counts (matched, updated,
// skipped, failed) and the first failures. A large selection takes as long
// as it takes: ctx's deadline, if any, bounds it.
func (c *Client) BulkUpdateJobs(ctx context.Context, req *pb.BulkUpdateJobsRequest) (*pb.BulkUpdateJobsResponse, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.jobs.BulkUpdateJobs(ctx)
	if err != nil {
		return nil, fromRPC(err)
	}
	if err := stream.Send(req); err != nil && !errors.Is(err, io.EOF) {
		return nil, fromRPC(err)
	}
	stream.CloseSend() //nolint:errcheck // Recv reports the outcome
	res, err := stream.Recv()
	if err != nil {
		return nil, fromRPC(err)
	}
	return res, nil
}

// Admin returns the AdminService client over this Client's connection
// (dispatch and queue controls, server info, webhook deliveries, backup).
// Its errors are gRPC statuses; Code(err) reads their code.
func (c *Client) Admin() pb.AdminServiceClient { return pb.NewAdminServiceClient(c.conn) }
