package agents

import (
	"context"
	"errors"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
)

// Storage errors; test with errors.Is.
var (
	ErrNotFound = errors.New("agents: not found")
	// ErrTokenUnusable: the join token is revoked, expired or used up.
	ErrTokenUnusable = errors.New("agents: join token revoked, expired or used up")
	// ErrInvalid: a request the service refuses (an instruction outside the closed set, ...).
	ErrInvalid = errors.New("agents: invalid request")
)

// JoinToken is an account's enrollment secret. Only a hash of the secret is stored.
type JoinToken struct {
	ID        string     `json:"tokenId"`
	Account   string     `json:"account"`
	Name      string     `json:"name"`
	Hash      string     `json:"-"` // hex SHA-256 of the secret
	CreatedAt time.Time  `json:"createdAt"`
	ExpiresAt time.Time  `json:"expiresAt"`
	MaxUses   int        `json:"maxUses"`
	Uses      int        `json:"uses"`
	RevokedAt *time.Time `json:"revokedAt,omitempty"`
}

// Agent is an enrolled vigil-agent and what it last reported.
type Agent struct {
	ID         string    `json:"agentId"`
	Account    string    `json:"account"`
	Hostname   string    `json:"hostname"`
	MachineID  string    `json:"machineId,omitempty"`
	OS         *model.OS `json:"os,omitempty"`
	Version    string    `json:"agentVersion"`
	EnrolledAt time.Time `json:"enrolledAt"`
	// TokenID is the join token it enrolled with.
	TokenID string `json:"tokenId,omitempty"`
	// CertSerial (hex) and CertNotAfter describe the current client certificate; PrevSerial is
	// the one it replaced, still accepted until it expires in case the renewal answer was lost.
	CertSerial   string    `json:"certSerial"`
	CertNotAfter time.Time `json:"certNotAfter"`
	PrevSerial   string    `json:"-"`
	PrevNotAfter time.Time `json:"-"`
	// HeartbeatSeconds overrides the global heartbeat period when > 0.
	HeartbeatSeconds int       `json:"heartbeatSeconds,omitempty"`
	LastHeartbeat    time.Time `json:"lastHeartbeatAt,omitzero"`
	State            string    `json:"state,omitempty"`
	Sensors          []string  `json:"sensors,omitempty"`
	Errors           []string  `json:"errors,omitempty"`
	// InventoryHash and LastInventoryAt describe the latest inventory received (or confirmed).
	InventoryHash   string          `json:"inventoryHash,omitempty"`
	LastInventoryAt time.Time       `json:"lastInventoryAt,omitzero"`
	Facts           *protocol.Facts `json:"facts,omitempty"`
	RevokedAt       *time.Time      `json:"revokedAt,omitempty"`
}

// ResourceID is the host resource an agent reports for: the agent ID itself (see package doc).
func (a *Agent) ResourceID() string { return a.ID }

// Heartbeat is what a heartbeat changes on an agent.
type Heartbeat struct {
	At      time.Time
	Version string
	State   string
	Sensors []string
	Errors  []string
}

// Instruction statuses.
const (
	InstructionPending   = "PENDING"
	InstructionDelivered = "DELIVERED"
	InstructionSucceeded = "SUCCEEDED"
	InstructionFailed    = "FAILED"
)

// MaxDeliveries bounds how often an unacknowledged instruction is sent.
const MaxDeliveries = 5

// QueuedInstruction is an instruction with its delivery state.
type QueuedInstruction struct {
	protocol.Instruction
	Account     string     `json:"account"`
	AgentID     string     `json:"agentId"`
	Status      string     `json:"status"`
	CreatedAt   time.Time  `json:"createdAt"`
	DeliveredAt *time.Time `json:"deliveredAt,omitempty"`
	Attempts    int        `json:"attempts"`
	CompletedAt *time.Time `json:"completedAt,omitempty"`
	Error       string     `json:"error,omitempty"`
}

// StoredInventory is an agent's inventory as received: gzip-compressed JSON of model.Inventory.
type StoredInventory struct {
	Hash       string
	ReceivedAt time.Time
	Gzip       []byte
}

// Storage persists agents, join tokens, instructions and inventories. Methods that take an
// account never touch another account's rows; GetAgent and GetToken are system-wide because they
// run before the caller's account is known (certificate and token authentication).
type Storage interface {
	CreateToken(ctx context.Context, t JoinToken) error
	GetToken(ctx context.Context, id string) (JoinToken, error)
	ListTokens(ctx context.Context, account string) ([]JoinToken, error)
	RevokeToken(ctx context.Context, account, id string, at time.Time) error
	// ConsumeToken takes one use of the token in a single atomic step, failing with
	// ErrTokenUnusable when it is revoked, expired at now, or used up.
	ConsumeToken(ctx context.Context, id string, now time.Time) error

	CreateAgent(ctx context.Context, a Agent) error
	GetAgent(ctx context.Context, id string) (Agent, error)
	// ListAgents lists an account's agents; account "" lists every account's (for status sweeps).
	ListAgents(ctx context.Context, account string) ([]Agent, error)
	RevokeAgent(ctx context.Context, account, id string, at time.Time) error
	// SetCertificate records a renewed certificate; the current one becomes the previous one.
	SetCertificate(ctx context.Context, id, serial string, notAfter time.Time) error
	SetHeartbeatSeconds(ctx context.Context, account, id string, seconds int) error
	RecordHeartbeat(ctx context.Context, id string, hb Heartbeat) error
	// TouchHeartbeats moves the last heartbeat of each agent forward to the time given (never
	// back), in one transaction where the storage has them.
	TouchHeartbeats(ctx context.Context, at map[string]time.Time) error
	// ConfirmInventory records that the agent's inventory hash is still current at.
	ConfirmInventory(ctx context.Context, id, hash string, at time.Time, facts *protocol.Facts) error
	// PutInventory stores a new inventory as the agent's latest (keeping the one before, the
	// usual base of the next delta) and records hash, time, OS and facts on the agent.
	PutInventory(ctx context.Context, id string, inv StoredInventory, os *model.OS, facts *protocol.Facts) error
	// Inventory returns the agent's stored inventory with that hash.
	Inventory(ctx context.Context, id, hash string) (StoredInventory, error)

	QueueInstruction(ctx context.Context, in QueuedInstruction) error
	// DeliverInstructions returns the agent's instructions to send now — pending ones, and
	// delivered ones without a result since before redeliverBefore and sent fewer than
	// MaxDeliveries times — and marks them delivered.
	DeliverInstructions(ctx context.Context, agentID string, now, redeliverBefore time.Time) ([]QueuedInstruction, error)
	CompleteInstruction(ctx context.Context, agentID, id string, res protocol.InstructionResult, at time.Time) error
	ListInstructions(ctx context.Context, account, agentID string) ([]QueuedInstruction, error)
}
