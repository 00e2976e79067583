package model

import (
	"encoding/json"
	"time"
)

// Account roles within an organization.
const (
	AccountManagement    = "MANAGEMENT"
	AccountDelegated     = "DELEGATED_ADMIN"
	AccountMember        = "MEMBER"
	AccountStandalone    = "STANDALONE"
	ResourceHost         = "host"
	ResourceImage        = "image"
	ResourceFunction     = "function"
	ScanPackage          = "package"
	ScanNetwork          = "network"
	ScanCode             = "code"
	ScanConfig           = "config"
	CoverageActive       = "ACTIVE"
	CoverageInactive     = "INACTIVE"
	ExclusionTag         = "VigilExclusion"
	DefaultReopenWindow  = 7 * 24 * time.Hour
	DefaultClosedRetain  = 30 * 24 * time.Hour
	DefaultRemovedRetain = 3 * 24 * time.Hour
)

// Coverage reason codes (Inspector's list).
const (
	ReasonPendingInitialScan = "PENDING_INITIAL_SCAN"
	ReasonSuccessful         = "SUCCESSFUL"
	ReasonScanInProgress     = "SCAN_IN_PROGRESS"
	ReasonUnmanagedInstance  = "UNMANAGED_INSTANCE"
	ReasonUnsupportedOS      = "UNSUPPORTED_OS"
	ReasonNoInventory        = "NO_INVENTORY"
	ReasonStaleInventory     = "STALE_INVENTORY"
	ReasonInstanceStopped    = "INSTANCE_STOPPED"
	ReasonResourceTerminated = "RESOURCE_TERMINATED"
	ReasonExcludedByTag      = "EXCLUDED_BY_TAG"
	ReasonEligibilityExpired = "SCAN_ELIGIBILITY_EXPIRED"
	ReasonInternalError      = "INTERNAL_ERROR"
	// ReasonPendingDisable: the account has not enabled (or has disabled) the scan type of this
	// resource; nothing it sends is scanned until the type is enabled (Inspector's code for a
	// resource whose scan type was disabled).
	ReasonPendingDisable = "PENDING_DISABLE"
)

// Account is a tenant. Every stored row belongs to one.
type Account struct {
	ID   string `json:"accountId"`
	Name string `json:"name"`
	// Organization groups a management account, at most one delegated admin and members.
	Organization string `json:"organizationId,omitempty"`
	Role         string `json:"role"`
	// Enabled lists the scan types enabled for the account.
	Enabled   []string  `json:"enabledScanTypes,omitempty"`
	CreatedAt time.Time `json:"createdAt"`
}

// ScanEnabled reports whether the account enabled package scanning of resources of resourceType
// ("host", "image", "function"). The legacy entry "package" enables all three.
func (a *Account) ScanEnabled(resourceType string) bool {
	for _, t := range a.Enabled {
		if t == resourceType || t == ScanPackage {
			return true
		}
	}
	return false
}

// Resource is a thing that is scanned.
type Resource struct {
	Account  string            `json:"account"`
	ID       string            `json:"resourceId"`
	Type     string            `json:"resourceType"`
	Name     string            `json:"name,omitempty"`
	Tags     map[string]string `json:"tags,omitempty"`
	Metadata map[string]string `json:"metadata,omitempty"`
	// ImageRepository is set for images ("registry.example.com/team/app").
	ImageRepository string `json:"imageRepository,omitempty"`
	ScanMode        string `json:"scanMode,omitempty"`
	// InventoryHash is a content hash of the latest inventory: an unchanged resubmission is a no-op.
	InventoryHash string    `json:"inventoryHash,omitempty"`
	LastScannedAt time.Time `json:"lastScannedAt,omitzero"`
	CreatedAt     time.Time `json:"createdAt,omitzero"`
	// RemovedAt is set when the resource was deleted or terminated; its findings go after a while.
	RemovedAt *time.Time `json:"removedAt,omitempty"`
}

// Excluded reports whether the resource carries the exclusion tag.
func (r *Resource) Excluded() bool {
	_, ok := r.Tags[ExclusionTag]
	return ok
}

// Coverage is the scan state of one resource for one scan type.
type Coverage struct {
	Account       string    `json:"account"`
	ResourceID    string    `json:"resourceId"`
	ResourceType  string    `json:"resourceType"`
	ScanType      string    `json:"scanType"`
	Status        string    `json:"status"`
	Reason        string    `json:"reason"`
	ScanMode      string    `json:"scanMode,omitempty"`
	LastScannedAt time.Time `json:"lastScannedAt,omitzero"`
	UpdatedAt     time.Time `json:"updatedAt,omitzero"`
}

// Range is an inclusive numeric range of a filter; nil bounds are open.
type NumberRange struct {
	Min *float64 `json:"min,omitempty"`
	Max *float64 `json:"max,omitempty"`
}

// TimeRange is an inclusive time range of a filter; nil bounds are open.
type TimeRange struct {
	From *time.Time `json:"from,omitempty"`
	To   *time.Time `json:"to,omitempty"`
}

// FindingFilter selects findings: for listing, aggregations and suppression rules. Within a field
// the values are alternatives (OR); across fields all must hold (AND). Empty fields select all.
type FindingFilter struct {
	Accounts          []string          `json:"accounts,omitempty"`
	Severities        []string          `json:"severities,omitempty"`
	Statuses          []string          `json:"statuses,omitempty"`
	Types             []string          `json:"types,omitempty"`
	VulnerabilityIDs  []string          `json:"vulnerabilityIds,omitempty"`
	PackageNames      []string          `json:"packageNames,omitempty"`
	PackageVersions   []string          `json:"packageVersions,omitempty"`
	ResourceIDs       []string          `json:"resourceIds,omitempty"`
	ResourceTypes     []string          `json:"resourceTypes,omitempty"`
	ResourceTags      map[string]string `json:"resourceTags,omitempty"`
	ImageRepositories []string          `json:"imageRepositories,omitempty"`
	FixAvailable      []string          `json:"fixAvailable,omitempty"`
	ExploitAvailable  []string          `json:"exploitAvailable,omitempty"`
	EPSS              *NumberRange      `json:"epss,omitempty"`
	RiskScore         *NumberRange      `json:"riskScore,omitempty"`
	FirstObserved     *TimeRange        `json:"firstObservedAt,omitempty"`
	LastObserved      *TimeRange        `json:"lastObservedAt,omitempty"`
}

// SuppressionRule turns the findings its filter matches SUPPRESSED, now and in future.
type SuppressionRule struct {
	ID        string        `json:"ruleId"`
	Account   string        `json:"account"`
	Name      string        `json:"name"`
	Reason    string        `json:"reason"`
	Filter    FindingFilter `json:"filter"`
	ExpiresAt *time.Time    `json:"expiresAt,omitempty"`
	CreatedAt time.Time     `json:"createdAt"`
	UpdatedAt time.Time     `json:"updatedAt"`
}

// Event types.
const (
	EventFindingCreated  = "vigil.finding.created"
	EventFindingUpdated  = "vigil.finding.updated"
	EventFindingClosed   = "vigil.finding.closed"
	EventScanCompleted   = "vigil.scan.completed"
	EventCoverageChanged = "vigil.coverage.changed"
)

// OutboxEvent is one change, written to the outbox in the same transaction as the change itself and
// delivered as a CloudEvents 1.0 envelope.
type OutboxEvent struct {
	ID      string          `json:"id"`
	Type    string          `json:"type"`
	Account string          `json:"account"`
	Subject string          `json:"subject"` // a finding ID, a resource ID
	Time    time.Time       `json:"time"`
	Data    json.RawMessage `json:"data"`
}

// InventorySubmission is the body of PUT /v1/resources/{type}/{id}/inventory.
type InventorySubmission struct {
	Account         string            `json:"account,omitempty"`
	Name            string            `json:"name,omitempty"`
	Tags            map[string]string `json:"tags,omitempty"`
	Metadata        map[string]string `json:"metadata,omitempty"`
	ImageRepository string            `json:"imageRepository,omitempty"`
	ScanMode        string            `json:"scanMode,omitempty"`
	Inventory       Inventory         `json:"inventory"`
}

// SubmissionResult is the answer to an inventory submission.
type SubmissionResult struct {
	ResourceID string `json:"resourceId"`
	Unchanged  bool   `json:"unchanged"`
	Findings   int    `json:"activeFindings"`
	Created    int    `json:"created"`
	Closed     int    `json:"closed"`
}
