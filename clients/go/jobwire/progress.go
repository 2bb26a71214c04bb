package jobwire

import (
	"context"
	"iter"
	"time"

	pb "github.com/jobwire/jobwire/clients/go/gen/jobwire/v1"
)

// Progress is the aggregate state of the jobs a WatchProgress follows.
type Progress struct {
	Total, Succeeded, Failed, Cancelled, Running int
	// Rate is the jobs ended per second since the watch began (those that
	// ended while watched); ETA the time left at that rate (0: unknown or
	// done).
	Rate float64
	ETA  time.Duration
}

// Ended is how many of the jobs have ended.
func (p Progress) Ended() int { return p.Succeeded + p.Failed + p.Cancelled }

// Done reports whether every job has ended.
func (p Progress) Done() bool { return p.Ended() == p.Total }

// WatchProgress yields aggregate counts over the jobs filter matches (and
// any that match later) until every one has ended: one Progress at the start
// and one after each change. It takes a cursor (GetServerInfo's
// last_event_id), lists them, then follows them on one WatchJobs stream
// from that cursor, skipping what the list saw.
// Stop early by breaking out of the loop; an error ends the sequence.
func (c *Client) WatchProgress(ctx context.Context, filter string) iter.Seq2[Progress, error] {
	return func(yield func(Progress, error) bool) {
		type known struct {
			state pb.Job_State
			seq   int64
		}
		jobs := map[string]known{}
		start := time.Now()
		endedHere := 0
		progress := func() Progress {
			var p Progress
			for _, k := range jobs {
				switch k.state {
				case pb.Job_STATE_SUCCEEDED:
					p.Succeeded++
				case pb.Job_STATE_FAILED:
					p.Failed++
				case pb.Job_STATE_CANCELLED:
					p.Cancelled++
				case pb.Job_STATE_RUNNING:
					p.Running++
				}
			}
			p.Total = len(jobs)
			if s := time.Since(start).Seconds(); s > 0 {
				p.Rate = float64(endedHere) / s
			}
			if p.Rate > 0 && !p.Done() {
				p.ETA = time.Duration(float64(p.Total-p.Ended()) / p.Rate * float64(time.Second))
			}
			return p
		}
		allEnded := func() bool {
			for _, k := range jobs {
				if !IsTerminal(k.state) {
					return false
				}
			}
			return true
		}
		// The cursor before the list: every change after the list is on
		// the stream, which replays nothing older.
		info, err := c.Admin().GetServerInfo(ctx, &pb.GetServerInfoRequest{})
		if err != nil {
			yield(Progress{}, fromRPC(err))
			return
		}
		cursor := info.GetLastEventId()
		for j, err := range c.ListJobs(ctx, filter, ListOptions{}) {
			if err != nil {
				yield(Progress{}, err)
				return
			}
			jobs[j.GetId()] = known{j.GetState(), j.GetLastSeq()}
		}
		if !yield(progress(), nil) || allEnded() {
			return
		}
		for e, err := range c.WatchJobs(ctx, filter, &cursor) {
			if err != nil {
				yield(Progress{}, err)
				return
			}
			var state pb.Job_State
			switch {
			case e.GetStateChanged() != nil:
				state = e.GetStateChanged().GetTo()
			case e.GetSnapshot() != nil:
				state = e.GetSnapshot().GetState()
			default:
				continue
			}
			before, seen := jobs[e.GetJobId()]
			if seen && e.GetSeq() <= before.seq {
				continue // a replay of what the list saw
			}
			if seen && IsTerminal(state) && !IsTerminal(before.state) {
				endedHere++
			}
			jobs[e.GetJobId()] = known{state, e.GetSeq()}
			if !yield(progress(), nil) || allEnded() {
				return
			}
		}
	}
}
