package agents

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
)

// Memory is an in-memory Storage for tests and single-process experiments.
type Memory struct {
	mu     sync.Mutex
	tokens map[string]JoinToken
	agents map[string]Agent
	instr  []QueuedInstruction
	inv    map[string][]StoredInventory // agent → newest last, at most 2
}

// NewMemory returns an empty in-memory Storage.
func NewMemory() *Memory {
	return &Memory{tokens: map[string]JoinToken{}, agents: map[string]Agent{}, inv: map[string][]StoredInventory{}}
}

var _ Storage = (*Memory)(nil)

func (m *Memory) CreateToken(_ context.Context, t JoinToken) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.tokens[t.ID]; ok {
		return fmt.Errorf("agents: token %s exists", t.ID)
	}
	m.tokens[t.ID] = t
	return nil
}

func (m *Memory) GetToken(_ context.Context, id string) (JoinToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[id]
	if !ok {
		return t, fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	return t, nil
}

func (m *Memory) ListTokens(_ context.Context, account string) ([]JoinToken, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []JoinToken
	for _, t := range m.tokens {
		if t.Account == account {
			out = append(out, t)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].CreatedAt.Before(out[j].CreatedAt) || out[i].CreatedAt.Equal(out[j].CreatedAt) && out[i].ID < out[j].ID
	})
	return out, nil
}

func (m *Memory) RevokeToken(_ context.Context, account, id string, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[id]
	if !ok || t.Account != account {
		return fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	if t.RevokedAt == nil {
		t.RevokedAt = &at
	}
	m.tokens[id] = t
	return nil
}

func (m *Memory) ConsumeToken(_ context.Context, id string, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.tokens[id]
	if !ok {
		return fmt.Errorf("token %s: %w", id, ErrNotFound)
	}
	if t.RevokedAt != nil || !now.Before(t.ExpiresAt) || t.Uses >= t.MaxUses {
		return ErrTokenUnusable
	}
	t.Uses++
	m.tokens[id] = t
	return nil
}

func (m *Memory) CreateAgent(_ context.Context, a Agent) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.agents[a.ID]; ok {
		return fmt.Errorf("agents: agent %s exists", a.ID)
	}
	m.agents[a.ID] = a
	return nil
}

func (m *Memory) GetAgent(_ context.Context, id string) (Agent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.agents[id]
	if !ok {
		return a, fmt.Errorf("agent %s: %w", id, ErrNotFound)
	}
	return a, nil
}

func (m *Memory) ListAgents(_ context.Context, account string) ([]Agent, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Agent
	for _, a := range m.agents {
		if account == "" || a.Account == account {
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Account+"\x00"+out[i].ID < out[j].Account+"\x00"+out[j].ID })
	return out, nil
}

// update applies fn to an agent of account ("" = any account).
func (m *Memory) update(account, id string, fn func(*Agent)) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	a, ok := m.agents[id]
	if !ok || account != "" && a.Account != account {
		return fmt.Errorf("agent %s: %w", id, ErrNotFound)
	}
	fn(&a)
	m.agents[id] = a
	return nil
}

func (m *Memory) RevokeAgent(_ context.Context, account, id string, at time.Time) error {
	return m.update(account, id, func(a *Agent) {
		if a.RevokedAt == nil {
			a.RevokedAt = &at
		}
	})
}

func (m *Memory) SetCertificate(_ context.Context, id, serial string, notAfter time.Time) error {
	return m.update("", id, func(a *Agent) {
		a.PrevSerial, a.PrevNotAfter = a.CertSerial, a.CertNotAfter
		a.CertSerial, a.CertNotAfter = serial, notAfter
	})
}

func (m *Memory) SetHeartbeatSeconds(_ context.Context, account, id string, seconds int) error {
	return m.update(account, id, func(a *Agent) { a.HeartbeatSeconds = seconds })
}

func (m *Memory) RecordHeartbeat(_ context.Context, id string, hb Heartbeat) error {
	return m.update("", id, func(a *Agent) {
		a.LastHeartbeat, a.Version, a.State = hb.At, hb.Version, hb.State
		a.Sensors, a.Errors = slices.Clone(hb.Sensors), slices.Clone(hb.Errors)
	})
}

func (m *Memory) TouchHeartbeats(_ context.Context, at map[string]time.Time) error {
	for id, t := range at {
		if err := m.update("", id, func(a *Agent) {
			if a.LastHeartbeat.Before(t) {
				a.LastHeartbeat = t
			}
		}); err != nil && !errors.Is(err, ErrNotFound) {
			return err
		}
	}
	return nil
}

func (m *Memory) ConfirmInventory(_ context.Context, id, hash string, at time.Time, facts *protocol.Facts) error {
	return m.update("", id, func(a *Agent) {
		a.InventoryHash, a.LastInventoryAt = hash, at
		if facts != nil {
			a.Facts = facts
		}
	})
}

func (m *Memory) PutInventory(_ context.Context, id string, inv StoredInventory, os *model.OS, facts *protocol.Facts) error {
	if err := m.update("", id, func(a *Agent) {
		a.InventoryHash, a.LastInventoryAt = inv.Hash, inv.ReceivedAt
		if os != nil {
			a.OS = os
		}
		if facts != nil {
			a.Facts = facts
		}
	}); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	list := slices.DeleteFunc(m.inv[id], func(s StoredInventory) bool { return s.Hash == inv.Hash })
	list = append(list, inv)
	if len(list) > 2 {
		list = list[len(list)-2:]
	}
	m.inv[id] = list
	return nil
}

func (m *Memory) Inventory(_ context.Context, id, hash string) (StoredInventory, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.inv[id] {
		if s.Hash == hash {
			return s, nil
		}
	}
	return StoredInventory{}, fmt.Errorf("inventory %s of agent %s: %w", hash, id, ErrNotFound)
}

func (m *Memory) QueueInstruction(_ context.Context, in QueuedInstruction) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.instr = append(m.instr, in)
	return nil
}

func (m *Memory) DeliverInstructions(_ context.Context, agentID string, now, redeliverBefore time.Time) ([]QueuedInstruction, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []QueuedInstruction
	for i := range m.instr {
		in := &m.instr[i]
		if in.AgentID != agentID {
			continue
		}
		due := in.Status == InstructionPending ||
			in.Status == InstructionDelivered && in.DeliveredAt != nil && in.DeliveredAt.Before(redeliverBefore) && in.Attempts < MaxDeliveries
		if !due {
			continue
		}
		t := now
		in.Status, in.DeliveredAt = InstructionDelivered, &t
		in.Attempts++
		out = append(out, *in)
	}
	return out, nil
}

func (m *Memory) CompleteInstruction(_ context.Context, agentID, id string, res protocol.InstructionResult, at time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.instr {
		in := &m.instr[i]
		if in.AgentID != agentID || in.ID != id {
			continue
		}
		in.Status, in.Error, in.CompletedAt = InstructionSucceeded, "", &at
		if !res.OK {
			in.Status, in.Error = InstructionFailed, res.Error
		}
		return nil
	}
	return fmt.Errorf("instruction %s: %w", id, ErrNotFound)
}

func (m *Memory) ListInstructions(_ context.Context, account, agentID string) ([]QueuedInstruction, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []QueuedInstruction
	for _, in := range m.instr {
		if in.Account == account && (agentID == "" || in.AgentID == agentID) {
			out = append(out, in)
		}
	}
	return out, nil
}
