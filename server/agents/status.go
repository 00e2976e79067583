package agents

import (
	"context"
	"slices"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/findings"
	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/version"
)

// Ping statuses of an agent.
const (
	PingOnline         = "ONLINE"
	PingConnectionLost = "CONNECTION_LOST"
)

// PingStatus is ONLINE while the agent's last heartbeat (or its enrollment, before the first) is
// within two heartbeat periods of now, CONNECTION_LOST after that and once it is revoked.
func (s *Service) PingStatus(a Agent, now time.Time) string {
	last := a.LastHeartbeat
	if last.IsZero() {
		last = a.EnrolledAt
	}
	if a.RevokedAt != nil || now.Sub(last) > 2*time.Duration(s.heartbeatSeconds(a))*time.Second {
		return PingConnectionLost
	}
	return PingOnline
}

// hostCoverage derives the package-scan coverage of an agent's host. The inventory-based rules
// of findings.DeriveCoverage apply, refined by what only the agent knows. enabled says whether
// the account has package scanning of hosts enabled: when not, the host is INACTIVE
// PENDING_DISABLE (unless terminated), the first thing to fix before anything else matters.
func (s *Service) hostCoverage(res model.Resource, a Agent, enabled bool, now time.Time) model.Coverage {
	c := findings.DeriveCoverage(&res, model.ScanPackage, findings.ScanState{LastInventoryAt: a.LastInventoryAt, OS: a.OS}, now, s.cfg.Lifecycle)
	set := func(status, reason string) model.Coverage {
		c.Status, c.Reason = status, reason
		return c
	}
	switch {
	case c.Reason == model.ReasonResourceTerminated:
		return c
	case !enabled:
		return set(model.CoverageInactive, model.ReasonPendingDisable)
	case c.Reason == model.ReasonExcludedByTag:
		return c
	case a.RevokedAt != nil:
		return set(model.CoverageInactive, model.ReasonUnmanagedInstance)
	case a.State == protocol.StateShutdown:
		return set(model.CoverageInactive, model.ReasonInstanceStopped)
	case a.LastInventoryAt.IsZero() && a.OS != nil && !osSupported(a.OS):
		return set(model.CoverageInactive, model.ReasonUnsupportedOS)
	case a.LastInventoryAt.IsZero() && now.Sub(a.EnrolledAt) > s.cfg.NoInventoryAfter:
		return set(model.CoverageInactive, model.ReasonNoInventory)
	}
	return c
}

func osSupported(o *model.OS) bool {
	if o.Ecosystem == "" {
		return false
	}
	_, ok := version.Lookup(o.Ecosystem)
	return ok
}

// hostScanEnabled reports whether account has package scanning of hosts enabled. An account
// that no longer exists has nothing enabled.
func (s *Service) hostScanEnabled(ctx context.Context, account string) (bool, error) {
	accts, err := s.cfg.Fleet.ListAccounts(ctx, []string{account})
	if err != nil {
		return false, err
	}
	return len(accts) == 1 && accts[0].ScanEnabled(model.ResourceHost), nil
}

// refreshHost writes the agent's host resource and its coverage, with a coverage-changed event
// when status or reason changed.
func (s *Service) refreshHost(ctx context.Context, a Agent, now time.Time) error {
	enabled, err := s.hostScanEnabled(ctx, a.Account)
	if err != nil {
		return err
	}
	return s.refreshHostScan(ctx, a, enabled, now)
}

// refreshHostScan is refreshHost when whether host scanning is enabled is already known.
func (s *Service) refreshHostScan(ctx context.Context, a Agent, enabled bool, now time.Time) error {
	res, changed, err := s.hostResourceChanged(ctx, a)
	if err != nil {
		return err
	}
	if changed {
		if err := s.cfg.Fleet.PutResource(ctx, res); err != nil {
			return err
		}
	}
	page, err := s.cfg.Fleet.ListCoverage(ctx, []string{a.Account}, store.CoverageQuery{
		ResourceIDs: []string{res.ID}, ScanTypes: []string{model.ScanPackage}})
	if err != nil {
		return err
	}
	var prev *model.Coverage
	if len(page.Coverage) > 0 {
		prev = &page.Coverage[0]
	}
	return s.writeCoverage(ctx, prev, s.hostCoverage(res, a, enabled, now), now)
}

// writeCoverage stores next unless nothing about it changed.
func (s *Service) writeCoverage(ctx context.Context, prev *model.Coverage, next model.Coverage, now time.Time) error {
	next.ScanMode = firstNonEmpty(next.ScanMode, ScanModeAgent)
	if prev != nil && prev.Status == next.Status && prev.Reason == next.Reason &&
		prev.LastScannedAt.Equal(next.LastScannedAt) && prev.ScanMode == next.ScanMode {
		return nil
	}
	cov, ev := findings.Changed(prev, next, now)
	ch := store.Changes{Account: cov.Account, Coverage: []model.Coverage{cov}}
	if ev != nil {
		// Two changes of one resource at the same instant (enrollment and a first upload within
		// a clock tick) must not collide: the new reason takes part in the event ID.
		ev.ID = findings.EventID(ev.Type, cov.Account+"\x00"+cov.ResourceID+"\x00"+cov.ScanType+"\x00"+cov.Status+"\x00"+cov.Reason, now)
		ch.Events = []model.OutboxEvent{*ev}
	}
	return s.cfg.Fleet.ApplyChanges(ctx, ch)
}

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

// RefreshStats counts what Refresh looked at and changed.
type RefreshStats struct {
	Agents, Online, ConnectionLost int
	Unmanaged                      int // host resources without an agent, marked UNMANAGED_INSTANCE
	CoverageChanged                int
}

// Refresh brings the package coverage of every agent's host up to date (STALE_INVENTORY after
// 7 days without inventory, NO_INVENTORY, INSTANCE_STOPPED, PENDING_DISABLE while the account has
// not enabled host scanning, ...) and marks the host resources of
// accounts that no agent reports for — known from elsewhere, with no inventory yet or formerly
// agent-managed — UNMANAGED_INSTANCE. Call it periodically (every minute or few). accounts are
// the accounts to check for unmanaged hosts; accounts with agents are always included.
func (s *Service) Refresh(ctx context.Context, accounts []string) (RefreshStats, error) {
	var st RefreshStats
	if err := s.flushHeartbeats(ctx); err != nil {
		return st, err
	}
	now := s.nowUTC()
	all, err := s.st.ListAgents(ctx, "")
	if err != nil {
		return st, err
	}
	byResource := map[[2]string]Agent{}
	accs := slices.Clone(accounts)
	for _, a := range all {
		key := [2]string{a.Account, a.ResourceID()}
		// Several agents for one resource cannot happen (the resource ID is the agent ID), but
		// keep the newest if a restore ever makes it so.
		if prev, ok := byResource[key]; !ok || a.EnrolledAt.After(prev.EnrolledAt) {
			byResource[key] = a
		}
		accs = append(accs, a.Account)
	}
	slices.Sort(accs)
	accs = slices.Compact(accs)
	if len(accs) == 0 {
		return st, nil
	}
	enabled := map[string]bool{}
	for chunk := range slices.Chunk(accs, 500) {
		list, err := s.cfg.Fleet.ListAccounts(ctx, chunk)
		if err != nil {
			return st, err
		}
		for _, acct := range list {
			enabled[acct.ID] = acct.ScanEnabled(model.ResourceHost)
		}
	}
	prevCov := map[[2]string]model.Coverage{}
	q := store.CoverageQuery{ResourceTypes: []string{model.ResourceHost}, ScanTypes: []string{model.ScanPackage}, PageSize: 1000}
	for {
		page, err := s.cfg.Fleet.ListCoverage(ctx, accs, q)
		if err != nil {
			return st, err
		}
		for _, c := range page.Coverage {
			prevCov[[2]string{c.Account, c.ResourceID}] = c
		}
		if page.NextToken == "" {
			break
		}
		q.PageToken = page.NextToken
	}
	write := func(key [2]string, next model.Coverage) error {
		var prev *model.Coverage
		if c, ok := prevCov[key]; ok {
			prev = &c
			if c.Status == next.Status && c.Reason == next.Reason {
				return nil
			}
		}
		st.CoverageChanged++
		return s.writeCoverage(ctx, prev, next, now)
	}
	rq := store.ResourceQuery{Types: []string{model.ResourceHost}, PageSize: 1000}
	for {
		page, err := s.cfg.Fleet.ListResources(ctx, accs, rq)
		if err != nil {
			return st, err
		}
		for _, res := range page.Resources {
			key := [2]string{res.Account, res.ID}
			if a, ok := byResource[key]; ok {
				st.Agents++
				if s.PingStatus(a, now) == PingOnline {
					st.Online++
				} else {
					st.ConnectionLost++
				}
				if err := write(key, s.hostCoverage(res, a, enabled[res.Account], now)); err != nil {
					return st, err
				}
				continue
			}
			if res.ScanMode != ScanModeAgent && !res.LastScannedAt.IsZero() {
				continue // covered by another scan mode (upload, agentless, ssh)
			}
			c := findings.DeriveCoverage(&res, model.ScanPackage, findings.ScanState{}, now, s.cfg.Lifecycle)
			switch {
			case c.Reason == model.ReasonResourceTerminated:
			case !enabled[res.Account]:
				c.Status, c.Reason = model.CoverageInactive, model.ReasonPendingDisable
			case c.Reason != model.ReasonExcludedByTag:
				c.Status, c.Reason = model.CoverageInactive, model.ReasonUnmanagedInstance
				st.Unmanaged++
			}
			c.ScanMode = res.ScanMode
			if err := write(key, c); err != nil {
				return st, err
			}
		}
		if page.NextToken == "" {
			break
		}
		rq.PageToken = page.NextToken
	}
	return st, nil
}
