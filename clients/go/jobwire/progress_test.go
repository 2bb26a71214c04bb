package jobwire_test

import (
	"testing"

	pb "github.com/jobwire/jobwire/clients/go/gen/jobwire/v1"
)

func TestWatchProgressCountsTheJobsOfAFilterToTheirEnd(t *testing.T) {
	s := startServer(t)
	c := dial(t, s)
	ctx := testCtx(t)
	var ids []string
	for i := 0; i < 3; i++ {
		res, err := c.SubmitJob(ctx, &pb.Job{Kind: "k", Labels: map[string]string{"b": "1"}}, "")
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.GetJob().GetId())
	}
	if _, err := c.SubmitJob(ctx, &pb.Job{Kind: "k", Labels: map[string]string{"b": "2"}}, ""); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CancelJob(ctx, ids[0], ""); err != nil {
		t.Fatal(err)
	}
	var ended []int
	for p, err := range c.WatchProgress(ctx, `labels.b = "1"`) {
		if err != nil {
			t.Fatal(err)
		}
		if p.Total != 3 {
			t.Fatalf("total %d, want 3", p.Total)
		}
		ended = append(ended, p.Ended())
		if len(ended) == 1 {
			if p.Cancelled != 1 || p.Done() {
				t.Fatalf("first %+v", p)
			}
			for _, id := range ids[1:] {
				if _, err := c.CancelJob(ctx, id, ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		if p.Done() && (p.Cancelled != 3 || p.Succeeded != 0 || p.ETA != 0 || p.Rate <= 0) {
			t.Fatalf("last %+v", p)
		}
	}
	// The list, then the two cancels: no replay of what the list saw.
	if len(ended) != 3 || ended[0] != 1 || ended[1] != 2 || ended[2] != 3 {
		t.Fatalf("ended counts %v, want [1 2 3]", ended)
	}
}
