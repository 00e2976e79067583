package agents

import (
	"context"
	"fmt"
	"path"
	"regexp"
	"strings"

	"github.com/vigil-sec/vigil/agent/protocol"
)

var knownSensors = map[string]bool{
	protocol.SensorOSPackages: true, protocol.SensorLangPackages: true,
	protocol.SensorPorts: true, protocol.SensorHostFacts: true,
}

// Collection interval bounds for SET_INTERVAL.
const (
	MinIntervalSeconds = 60
	MaxIntervalSeconds = 7 * 24 * 3600
	maxExtraPaths      = 10
)

var versionRE = regexp.MustCompile(`^v?[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$`)

// ValidateInstruction checks an instruction against the closed set of agent/protocol: a known
// type, only the fields of that type, and sane values. The ID is ignored (the server sets it).
func ValidateInstruction(in protocol.Instruction) error {
	sensorFields := in.Sensor != "" || len(in.Paths) > 0
	switch in.Type {
	case protocol.InstructionEnableSensor, protocol.InstructionDisableSensor:
		if !knownSensors[in.Sensor] {
			return fmt.Errorf("unknown sensor %q", in.Sensor)
		}
		if in.IntervalSeconds != 0 || in.Version != "" {
			return fmt.Errorf("%s takes only sensor and paths", in.Type)
		}
		if len(in.Paths) > 0 && (in.Type != protocol.InstructionEnableSensor || in.Sensor != protocol.SensorLangPackages) {
			return fmt.Errorf("paths apply only when enabling the %s sensor", protocol.SensorLangPackages)
		}
		if len(in.Paths) > maxExtraPaths {
			return fmt.Errorf("at most %d paths", maxExtraPaths)
		}
		for _, p := range in.Paths {
			if len(p) == 0 || len(p) > 512 || !strings.HasPrefix(p, "/") || path.Clean(p) != p || !printable(p) {
				return fmt.Errorf("path %q must be an absolute, clean path of at most 512 characters", p)
			}
		}
	case protocol.InstructionSetInterval:
		if sensorFields || in.Version != "" {
			return fmt.Errorf("%s takes only intervalSeconds", in.Type)
		}
		if in.IntervalSeconds < MinIntervalSeconds || in.IntervalSeconds > MaxIntervalSeconds {
			return fmt.Errorf("intervalSeconds must be between %d and %d", MinIntervalSeconds, MaxIntervalSeconds)
		}
	case protocol.InstructionCollectNow:
		if sensorFields || in.Version != "" || in.IntervalSeconds != 0 {
			return fmt.Errorf("%s takes no fields", in.Type)
		}
	case protocol.InstructionUpdate:
		if sensorFields || in.IntervalSeconds != 0 {
			return fmt.Errorf("%s takes only version", in.Type)
		}
		if len(in.Version) > 64 || !versionRE.MatchString(in.Version) {
			return fmt.Errorf("version %q is not a release version (1.2.3)", in.Version)
		}
	default:
		return fmt.Errorf("instruction type %q is not one of the closed set", in.Type)
	}
	return nil
}

// QueueInstruction validates an instruction and queues it for one of account's agents; the agent
// receives it with its next heartbeat. The ID is chosen here.
func (s *Service) QueueInstruction(ctx context.Context, account, agentID string, in protocol.Instruction) (QueuedInstruction, error) {
	if err := ValidateInstruction(in); err != nil {
		return QueuedInstruction{}, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	a, err := s.st.GetAgent(ctx, agentID)
	if err != nil {
		return QueuedInstruction{}, err
	}
	if a.Account != account {
		return QueuedInstruction{}, fmt.Errorf("agent %s: %w", agentID, ErrNotFound)
	}
	if a.RevokedAt != nil {
		return QueuedInstruction{}, fmt.Errorf("%w: agent %s is revoked", ErrInvalid, agentID)
	}
	in.ID = "ins-" + randHex(12)
	q := QueuedInstruction{Instruction: in, Account: account, AgentID: agentID, Status: InstructionPending, CreatedAt: s.nowUTC()}
	if err := s.st.QueueInstruction(ctx, q); err != nil {
		return QueuedInstruction{}, err
	}
	return q, nil
}
