package agents

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/auth"
)

// AdminRoutes are the administrators' endpoints; mount them behind API-key authentication. Each
// acts on the account of the "account" query parameter, else the caller's own, after
// Config.Authorize allowed it.
func (s *Service) AdminRoutes() []Route {
	return []Route{
		{"GET /v1/agents", s.listAgents, 0, "ListAgents", "List agents with ping status, version, sensors and errors"},
		{"GET /v1/agents/{agentId}", s.getAgent, 0, "GetAgent", "An agent with its facts"},
		{"POST /v1/agents/{agentId}/revoke", s.revokeAgent, 0, "RevokeAgent", "Revoke an agent: its certificate is refused from now on"},
		{"PUT /v1/agents/{agentId}/heartbeat", api.JSONHandler(s.setHeartbeat), 0, "SetAgentHeartbeat", "Set an agent's heartbeat period (0: the global one)"},
		{"POST /v1/agents/{agentId}/instructions", api.JSONHandler(s.queueInstruction), 0, "QueueAgentInstruction", "Queue a typed instruction for an agent"},
		{"GET /v1/agents/{agentId}/instructions", s.listInstructions, 0, "ListAgentInstructions", "An agent's instructions and their results"},
		{"GET /v1/agent-join-tokens", s.listTokens, 0, "ListJoinTokens", "List join tokens (never their secrets)"},
		{"POST /v1/agent-join-tokens", api.JSONHandler(s.createToken), 0, "CreateJoinToken", "Create a join token; its secret is shown once"},
		{"POST /v1/agent-join-tokens/{tokenId}/revoke", s.revokeToken, 0, "RevokeJoinToken", "Revoke a join token"},
	}
}

// adminAccount authorizes the request for action and returns the account it acts on.
func (s *Service) adminAccount(r *http.Request, action auth.Action) (string, error) {
	acct := r.URL.Query().Get("account")
	if acct == "" {
		p, _ := auth.PrincipalFrom(r.Context())
		acct = p.Account
	}
	if acct == "" {
		return "", api.BadRequest("no account: pass ?account=")
	}
	if s.cfg.Authorize == nil {
		return "", api.Forbidden("agent administration is not enabled")
	}
	if err := s.cfg.Authorize(r, action, acct); err != nil {
		return "", err
	}
	return acct, nil
}

// AgentView is an agent as the admin API shows it.
type AgentView struct {
	Agent
	PingStatus       string `json:"pingStatus"`
	HeartbeatSeconds int    `json:"heartbeatSeconds"`
}

func (s *Service) view(a Agent, now time.Time) AgentView {
	return AgentView{Agent: a, PingStatus: s.PingStatus(a, now), HeartbeatSeconds: s.heartbeatSeconds(a)}
}

// ListAgents returns an account's agents with their ping status.
func (s *Service) ListAgents(ctx context.Context, account string) ([]AgentView, error) {
	if err := s.flushHeartbeats(ctx); err != nil {
		return nil, err
	}
	list, err := s.st.ListAgents(ctx, account)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]AgentView, 0, len(list))
	for _, a := range list {
		a.Facts = nil // the list stays small; GetAgent shows them
		out = append(out, s.view(a, now))
	}
	return out, nil
}

func (s *Service) accountAgent(ctx context.Context, account, id string) (Agent, error) {
	if err := s.flushHeartbeats(ctx); err != nil {
		return Agent{}, err
	}
	a, err := s.st.GetAgent(ctx, id)
	if err == nil && a.Account != account {
		err = fmt.Errorf("agent %s: %w", id, ErrNotFound)
	}
	return a, err
}

// RevokeAgent revokes one of account's agents; its host's coverage becomes UNMANAGED_INSTANCE.
func (s *Service) RevokeAgent(ctx context.Context, account, id string) error {
	now := s.nowUTC()
	if err := s.st.RevokeAgent(ctx, account, id, now); err != nil {
		return err
	}
	a, err := s.st.GetAgent(ctx, id)
	if err != nil {
		return err
	}
	return s.refreshHost(ctx, a, now)
}

// RevokeToken revokes one of account's join tokens.
func (s *Service) RevokeToken(ctx context.Context, account, id string) error {
	return s.st.RevokeToken(ctx, account, id, s.nowUTC())
}

// SetHeartbeatSeconds sets an agent's heartbeat period; 0 returns it to the global one.
func (s *Service) SetHeartbeatSeconds(ctx context.Context, account, id string, seconds int) error {
	if seconds != 0 && (seconds < 10 || seconds > 3600) {
		return fmt.Errorf("%w: heartbeat period must be 0 or 10 to 3600 seconds", ErrInvalid)
	}
	return s.st.SetHeartbeatSeconds(ctx, account, id, seconds)
}

// adminError maps the package's errors to problems.
func adminError(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return api.NotFound(err.Error())
	case errors.Is(err, ErrInvalid):
		return api.Validation(api.FieldError{Field: "", Message: err.Error()})
	}
	return err
}

func (s *Service) listAgents(w http.ResponseWriter, r *http.Request) error {
	acct, err := s.adminAccount(r, auth.ReadResources)
	if err != nil {
		return err
	}
	list, err := s.ListAgents(r.Context(), acct)
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"agents": list})
}

func (s *Service) getAgent(w http.ResponseWriter, r *http.Request) error {
	acct, err := s.adminAccount(r, auth.ReadResources)
	if err != nil {
		return err
	}
	a, err := s.accountAgent(r.Context(), acct, r.PathValue("agentId"))
	if err != nil {
		return adminError(err)
	}
	return api.WriteJSON(w, http.StatusOK, s.view(a, s.now()))
}

func (s *Service) revokeAgent(w http.ResponseWriter, r *http.Request) error {
	acct, err := s.adminAccount(r, auth.WriteResources)
	if err != nil {
		return err
	}
	api.SetAuditTarget(r, "agent/"+r.PathValue("agentId"))
	if err := s.RevokeAgent(r.Context(), acct, r.PathValue("agentId")); err != nil {
		return adminError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// HeartbeatSetting is the body of PUT /v1/agents/{agentId}/heartbeat.
type HeartbeatSetting struct {
	HeartbeatSeconds int `json:"heartbeatSeconds"`
}

func (s *Service) setHeartbeat(w http.ResponseWriter, r *http.Request, body *HeartbeatSetting) error {
	acct, err := s.adminAccount(r, auth.WriteResources)
	if err != nil {
		return err
	}
	api.SetAuditTarget(r, "agent/"+r.PathValue("agentId"))
	if err := s.SetHeartbeatSeconds(r.Context(), acct, r.PathValue("agentId"), body.HeartbeatSeconds); err != nil {
		return adminError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) queueInstruction(w http.ResponseWriter, r *http.Request, body *protocol.Instruction) error {
	acct, err := s.adminAccount(r, auth.WriteResources)
	if err != nil {
		return err
	}
	api.SetAuditTarget(r, "agent/"+r.PathValue("agentId"))
	q, err := s.QueueInstruction(r.Context(), acct, r.PathValue("agentId"), *body)
	if err != nil {
		return adminError(err)
	}
	return api.WriteJSON(w, http.StatusCreated, q)
}

func (s *Service) listInstructions(w http.ResponseWriter, r *http.Request) error {
	acct, err := s.adminAccount(r, auth.ReadResources)
	if err != nil {
		return err
	}
	if _, err := s.accountAgent(r.Context(), acct, r.PathValue("agentId")); err != nil {
		return adminError(err)
	}
	list, err := s.st.ListInstructions(r.Context(), acct, r.PathValue("agentId"))
	if err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"instructions": list})
}

// TokenRequest is the body of POST /v1/agent-join-tokens.
type TokenRequest struct {
	Name string `json:"name"`
	// ValiditySeconds (default 86400) and MaxUses (default 1).
	ValiditySeconds int64 `json:"validitySeconds,omitempty"`
	MaxUses         int   `json:"maxUses,omitempty"`
}

// CreatedToken is the answer to a token creation: the only time the secret is shown.
type CreatedToken struct {
	JoinToken
	Token string `json:"token"`
}

func (s *Service) createToken(w http.ResponseWriter, r *http.Request, body *TokenRequest) error {
	acct, err := s.adminAccount(r, auth.WriteKeys)
	if err != nil {
		return err
	}
	if body.ValiditySeconds < 0 || body.ValiditySeconds > int64(MaxTokenValidity/time.Second) || body.MaxUses < 0 {
		return api.Validation(api.FieldError{Field: "validitySeconds", Message: "0 to one year; maxUses not negative"})
	}
	t, secret, err := s.CreateToken(r.Context(), TokenSpec{Account: acct, Name: body.Name,
		Validity: time.Duration(body.ValiditySeconds) * time.Second, MaxUses: body.MaxUses})
	if err != nil {
		return api.Validation(api.FieldError{Field: "", Message: err.Error()})
	}
	api.SetAuditTarget(r, "join-token/"+t.ID)
	return api.WriteJSON(w, http.StatusCreated, CreatedToken{JoinToken: t, Token: secret})
}

func (s *Service) listTokens(w http.ResponseWriter, r *http.Request) error {
	acct, err := s.adminAccount(r, auth.ReadKeys)
	if err != nil {
		return err
	}
	list, err := s.st.ListTokens(r.Context(), acct)
	if err != nil {
		return err
	}
	if list == nil {
		list = []JoinToken{}
	}
	return api.WriteJSON(w, http.StatusOK, map[string]any{"tokens": list})
}

func (s *Service) revokeToken(w http.ResponseWriter, r *http.Request) error {
	acct, err := s.adminAccount(r, auth.WriteKeys)
	if err != nil {
		return err
	}
	api.SetAuditTarget(r, "join-token/"+r.PathValue("tokenId"))
	if err := s.RevokeToken(r.Context(), acct, r.PathValue("tokenId")); err != nil {
		return adminError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
