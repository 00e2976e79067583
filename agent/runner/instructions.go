package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/vigil-sec/vigil/agent/collect"
	"github.com/vigil-sec/vigil/agent/protocol"
)

// Bounds on what an instruction may ask.
const (
	MinInterval   = 60            // seconds between collections, at least
	MaxInterval   = 7 * 24 * 3600 // seconds between collections, at most
	maxExtraPaths = 10            // Inspector allows 5 per account + 5 org-wide
	maxPathLen    = 512           // Inspector's Path model
	maxVersionLen = 64
	maxInstrPerHB = 100 // instructions taken from one heartbeat answer
)

// ErrRefused marks an instruction outside the closed set or with arguments out of bounds.
var ErrRefused = errors.New("instruction refused")

// DecodeHeartbeatResponse decodes a heartbeat answer. Unknown fields are ignored (the server may be
// newer); instructions beyond maxInstrPerHB are dropped and picked up by a later heartbeat.
func DecodeHeartbeatResponse(b []byte) (*protocol.HeartbeatResponse, error) {
	var r protocol.HeartbeatResponse
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("heartbeat answer: %w", err)
	}
	if len(r.Instructions) > maxInstrPerHB {
		r.Instructions = r.Instructions[:maxInstrPerHB]
	}
	return &r, nil
}

// Validate checks an instruction against the closed set and its arguments' bounds. Nothing in an
// instruction is ever executed: the types map to fixed actions of the agent.
func Validate(in protocol.Instruction) error {
	refuse := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrRefused, fmt.Sprintf(format, a...))
	}
	if in.ID == "" || len(in.ID) > 128 || strings.ContainsAny(in.ID, "/?#%") {
		return refuse("bad instruction id %q", in.ID)
	}
	switch in.Type {
	case protocol.InstructionEnableSensor, protocol.InstructionDisableSensor:
		if !collect.KnownSensor(in.Sensor) {
			return refuse("unknown sensor %q", in.Sensor)
		}
		if len(in.Paths) > 0 && in.Sensor != protocol.SensorLangPackages {
			return refuse("paths are only for the %s sensor", protocol.SensorLangPackages)
		}
		if len(in.Paths) > maxExtraPaths {
			return refuse("%d paths, at most %d", len(in.Paths), maxExtraPaths)
		}
		for _, p := range in.Paths {
			if err := validPath(p); err != nil {
				return refuse("%v", err)
			}
		}
	case protocol.InstructionSetInterval:
		if in.IntervalSeconds < MinInterval || in.IntervalSeconds > MaxInterval {
			return refuse("interval %d s outside [%d, %d]", in.IntervalSeconds, MinInterval, MaxInterval)
		}
	case protocol.InstructionCollectNow:
	case protocol.InstructionUpdate:
		if !validVersion(in.Version) {
			return refuse("bad release version %q", in.Version)
		}
	default:
		return refuse("unknown instruction type %q", in.Type)
	}
	return nil
}

// validPath admits absolute, clean, local paths.
func validPath(p string) error {
	switch {
	case p == "" || len(p) > maxPathLen:
		return fmt.Errorf("path of %d characters", len(p))
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("path %q is not absolute", p)
	case path.Clean(p) != p || strings.Contains(p, "/../"):
		return fmt.Errorf("path %q is not clean", p)
	case strings.ContainsAny(p, "\x00\n"):
		return fmt.Errorf("path %q has control characters", p)
	}
	return nil
}

// validVersion admits release versions such as "1.4.0" or "1.5.0-rc.1+build.7": they become URL
// path segments and must not traverse.
func validVersion(v string) bool {
	if v == "" || len(v) > maxVersionLen || v == "." || v == ".." {
		return false
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '+' || c == '_') {
			return false
		}
	}
	return true
}

// applySensor applies ENABLE_SENSOR / DISABLE_SENSOR to a sensor list and extra paths: enabling
// adds the sensor and the paths; disabling with paths removes those paths only; disabling without
// paths turns the sensor off.
func applySensor(in protocol.Instruction, sensors, paths []string) ([]string, []string) {
	sensors, paths = slices.Clone(sensors), slices.Clone(paths)
	if in.Type == protocol.InstructionEnableSensor {
		if !slices.Contains(sensors, in.Sensor) {
			sensors = append(sensors, in.Sensor)
		}
		for _, p := range in.Paths {
			if !slices.Contains(paths, p) {
				paths = append(paths, p)
			}
		}
		slices.Sort(sensors)
		return sensors, paths
	}
	if len(in.Paths) > 0 {
		paths = slices.DeleteFunc(paths, func(p string) bool { return slices.Contains(in.Paths, p) })
		return sensors, paths
	}
	return slices.DeleteFunc(sensors, func(s string) bool { return s == in.Sensor }), paths
}
