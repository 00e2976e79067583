// Package protocol is the wire contract between vigil-agent and the Vigil server: the JSON bodies
// of the agent endpoints and the closed set of typed instructions. Both sides import it; neither
// adds a field without the other knowing.
//
// Transport: HTTPS (TLS 1.3) to the server's API listener. Enrollment is the only call made with a
// join token; every other call is authenticated by the agent's client certificate (mutual TLS),
// issued by the server's CA at enrollment, whose subject names the agent ID. The agent opens every
// connection; it has no listening port.
//
//	POST /v1/agents/enroll                 EnrollRequest → EnrollResponse        (join token)
//	POST /v1/agent/heartbeat               Heartbeat → HeartbeatResponse          (client cert)
//	PUT  /v1/agent/inventory               Upload (gzip JSON) → UploadResponse   (client cert)
//	POST /v1/agent/instructions/{id}       InstructionResult → 204               (client cert)
//	POST /v1/agent/renew                   RenewRequest → RenewResponse           (client cert)
//	GET  /v1/agent/releases/{version}/{os}/{arch}   the binary; Release headers (client cert)
package protocol

import (
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Paths of the agent endpoints.
const (
	PathEnroll       = "/v1/agents/enroll"
	PathHeartbeat    = "/v1/agent/heartbeat"
	PathInventory    = "/v1/agent/inventory"
	PathInstructions = "/v1/agent/instructions/" // + instruction ID
	PathRenew        = "/v1/agent/renew"
	PathReleases     = "/v1/agent/releases/" // + version/os/arch
)

// Headers of a release download: the binary's SHA-256 (hex) and its ed25519 signature over the
// raw SHA-256 digest (base64). The agent verifies both against its pinned release key.
const (
	HeaderReleaseSHA256    = "Vigil-Release-Sha256"
	HeaderReleaseSignature = "Vigil-Release-Signature"
)

// EnrollRequest asks for a client certificate. The token is a join token of an account.
type EnrollRequest struct {
	Token string `json:"token"`
	// CSR is a PEM certificate request for a key generated on the host; the key never leaves it.
	CSR       string    `json:"csr"`
	Hostname  string    `json:"hostname"`
	MachineID string    `json:"machineId,omitempty"`
	Version   string    `json:"agentVersion"`
	OS        *model.OS `json:"os,omitempty"`
}

// EnrollResponse carries the agent's identity and certificate.
type EnrollResponse struct {
	AgentID string `json:"agentId"`
	Account string `json:"account"`
	// Certificate is the PEM client certificate; CA the PEM CA that issued it and the server's.
	Certificate string    `json:"certificate"`
	CA          string    `json:"ca"`
	NotAfter    time.Time `json:"notAfter"`
	// HeartbeatSeconds is the heartbeat period to use (60 by default).
	HeartbeatSeconds int `json:"heartbeatSeconds"`
}

// Sensor names.
const (
	SensorOSPackages   = "os-packages"
	SensorLangPackages = "language-packages"
	SensorPorts        = "listening-ports"
	SensorHostFacts    = "host-facts"
)

// Agent states reported in heartbeats.
const (
	StateRunning  = "RUNNING"
	StateShutdown = "SHUTDOWN" // the host is stopping: coverage becomes INSTANCE_STOPPED
)

// Heartbeat is sent every HeartbeatSeconds and when something happens.
type Heartbeat struct {
	Version string   `json:"agentVersion"`
	State   string   `json:"state"`
	Sensors []string `json:"sensors"` // enabled sensors
	// InventoryHash is the hash of the latest inventory the agent uploaded successfully ("" before the first).
	InventoryHash string    `json:"inventoryHash,omitempty"`
	Errors        []string  `json:"errors,omitempty"`
	Time          time.Time `json:"time"`
}

// HeartbeatResponse tells the agent what to do next.
type HeartbeatResponse struct {
	HeartbeatSeconds int           `json:"heartbeatSeconds"`
	Instructions     []Instruction `json:"instructions,omitempty"`
	// RenewBefore: the agent renews its certificate when it expires before this time.
	RenewBefore time.Time `json:"renewBefore,omitzero"`
}

// Instruction types: the closed set. Anything else is refused and reported as failed.
const (
	InstructionEnableSensor  = "ENABLE_SENSOR"
	InstructionDisableSensor = "DISABLE_SENSOR"
	InstructionSetInterval   = "SET_INTERVAL"
	InstructionCollectNow    = "COLLECT_NOW"
	InstructionUpdate        = "UPDATE"
)

// Instruction is one typed action. Only the fields of its Type are set. It never carries a
// command to execute.
type Instruction struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	// Sensor and Paths for ENABLE_SENSOR / DISABLE_SENSOR (Paths: extra language-package paths).
	Sensor string   `json:"sensor,omitempty"`
	Paths  []string `json:"paths,omitempty"`
	// IntervalSeconds for SET_INTERVAL (collection interval; default 1800).
	IntervalSeconds int `json:"intervalSeconds,omitempty"`
	// Version for UPDATE: the release to fetch from PathReleases.
	Version string `json:"version,omitempty"`
}

// InstructionResult reports what became of an instruction.
type InstructionResult struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Facts are what the host-facts and listening-ports sensors collect.
type Facts struct {
	Hostname      string    `json:"hostname"`
	MachineID     string    `json:"machineId,omitempty"`
	OS            *model.OS `json:"os,omitempty"`
	KernelVersion string    `json:"kernelVersion,omitempty"`
	Addresses     []string  `json:"addresses,omitempty"`
	Listening     []Socket  `json:"listening,omitempty"`
}

// Socket is one listening TCP or UDP socket and the process that owns it.
type Socket struct {
	Protocol string `json:"protocol"` // tcp, tcp6, udp, udp6
	Address  string `json:"address"`
	Port     int    `json:"port"`
	PID      int    `json:"pid,omitempty"`
	Process  string `json:"process,omitempty"`
}

// Upload sends the host's inventory: the full inventory, or only what changed since the inventory
// whose hash is BaseHash. The body is gzip-compressed JSON (Content-Encoding: gzip). Uploads are
// idempotent: the same Hash twice is a no-op.
type Upload struct {
	Hash     string           `json:"hash"`
	BaseHash string           `json:"baseHash,omitempty"`
	Full     *model.Inventory `json:"full,omitempty"`
	Added    []model.Package  `json:"added,omitempty"`
	Removed  []model.Package  `json:"removed,omitempty"`
	Facts    *Facts           `json:"facts,omitempty"`
	// CollectedAt is when the inventory was taken.
	CollectedAt time.Time `json:"collectedAt"`
}

// UploadResponse acknowledges an upload. NeedFull asks for a full upload: the server does not hold
// the inventory BaseHash names (it was restored, or never received it).
type UploadResponse struct {
	Hash     string `json:"hash"`
	NeedFull bool   `json:"needFull,omitempty"`
}

// ProblemScanNotEnabled is the problem type (RFC 9457 "type", in a 409 answer to an upload) saying
// that the agent's account has not enabled package scanning of hosts: the upload is refused, and
// sending it again is pointless until an administrator enables the scan type. The host's coverage
// says so too (INACTIVE PENDING_DISABLE).
const ProblemScanNotEnabled = "urn:vigil:problem:scan-type-not-enabled"

// RenewRequest asks for a new certificate for a new key before the current one expires.
type RenewRequest struct {
	CSR string `json:"csr"`
}

// RenewResponse carries the renewed certificate.
type RenewResponse struct {
	Certificate string    `json:"certificate"`
	NotAfter    time.Time `json:"notAfter"`
}
