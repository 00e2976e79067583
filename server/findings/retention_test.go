package findings

import (
	"reflect"
	"testing"
	"time"

	"github.com/vigil-sec/vigil/model"
)

func TestExpired(t *testing.T) {
	now := t0.Add(60 * day)
	closedOld := stored(openssl(), model.FindingClosed, t0, t0, now.Add(-30*day-time.Second))
	closedEdge := stored(libwebp(), model.FindingClosed, t0, t0, now.Add(-30*day))
	active := stored(libwebp(), model.FindingActive, t0, now, t0)
	active.ID = "vf-active"
	removedLong := now.Add(-3*day - time.Second)
	removedRecent := now.Add(-3 * day)
	tests := []struct {
		name string
		fs   []model.Finding
		r    *model.Resource
		cfg  Config
		want []string
	}{
		{"closed past 30 days", []model.Finding{closedOld, closedEdge, active}, &model.Resource{}, Config{}, []string{"vf-openssl"}},
		{"nil resource", []model.Finding{closedOld}, nil, Config{}, []string{"vf-openssl"}},
		{"removed past 3 days: all go", []model.Finding{closedEdge, active}, &model.Resource{RemovedAt: &removedLong}, Config{}, []string{"vf-libwebp", "vf-active"}},
		{"removed exactly 3 days: kept", []model.Finding{active}, &model.Resource{RemovedAt: &removedRecent}, Config{}, nil},
		{"configured closed retention", []model.Finding{closedEdge}, &model.Resource{}, Config{ClosedRetention: 10 * day}, []string{"vf-libwebp"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Expired(tc.fs, tc.r, now, tc.cfg); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Expired = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestDefaultConfig(t *testing.T) {
	c := Config{}.withDefaults()
	if c.ReopenWindow != model.DefaultReopenWindow || c.ClosedRetention != model.DefaultClosedRetain ||
		c.RemovedRetention != model.DefaultRemovedRetain || c.StaleAfter != 7*24*time.Hour || c != DefaultConfig() {
		t.Errorf("defaults = %+v", c)
	}
}

func TestCloseRemoved(t *testing.T) {
	r := CloseRemoved([]model.Finding{stored(openssl(), model.FindingActive, t0, t0, t0)}, t0.Add(day))
	if len(r.Events) != 1 || r.Events[0].Type != model.EventFindingClosed || r.Findings[0].Status != model.FindingClosed {
		t.Errorf("CloseRemoved = %+v", r)
	}
}
