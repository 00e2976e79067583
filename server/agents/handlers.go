package agents

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/server/api"
	"github.com/vigil-sec/vigil/server/bootstrap"
	"github.com/vigil-sec/vigil/server/store"
)

// Route is one endpoint for the API router: Pattern is "METHOD /path".
type Route struct {
	Pattern     string
	Handler     api.HandlerFunc
	BodyLimit   int64 // 0: the router's default
	OperationID string
	Summary     string
}

// AgentRoutes are the endpoints vigil-agent calls. Mount them with api.Public(): enrollment is
// authenticated by its join token, the others by the client certificate (RequireAgent).
func (s *Service) AgentRoutes() []Route {
	return []Route{
		{"POST " + protocol.PathEnroll, s.enroll, 64 << 10, "EnrollAgent", "Enroll an agent with a join token"},
		{"POST " + protocol.PathHeartbeat, s.requireAgent(s.heartbeat), 256 << 10, "AgentHeartbeat", "Agent heartbeat; answers instructions"},
		{"PUT " + protocol.PathInventory, s.requireAgent(s.upload), s.cfg.MaxUploadBytes + 1, "AgentUploadInventory", "Agent inventory upload (gzip JSON, full or delta)"},
		{"POST " + protocol.PathInstructions + "{instructionId}", s.requireAgent(s.instructionResult), 64 << 10, "AgentInstructionResult", "Agent reports an instruction's result"},
		{"POST " + protocol.PathRenew, s.requireAgent(s.renew), 64 << 10, "AgentRenewCertificate", "Agent renews its client certificate"},
		{"GET " + protocol.PathReleases + "{version}/{os}/{arch}", s.requireAgent(s.release), 0, "AgentRelease", "Download a signed agent release"},
	}
}

// Handler serves AgentRoutes on their own, without the API router (tests, a separate listener).
func (s *Service) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range s.AgentRoutes() {
		h, limit := rt.Handler, rt.BodyLimit
		mux.HandleFunc(rt.Pattern, func(w http.ResponseWriter, r *http.Request) {
			if limit > 0 {
				r.Body = http.MaxBytesReader(w, r.Body, limit)
			}
			if err := h(w, r); err != nil {
				api.WriteError(w, r, err)
			}
		})
	}
	return mux
}

// ConfigureTLS makes cfg request and verify agents' client certificates against the CA pool,
// with TLS 1.3 at least, including the per-connection configurations cfg.GetConfigForClient
// returns. Requests without a certificate still pass (API keys), so the agent endpoints check
// for one themselves. (bootstrap.Result.TLSConfig already does this; ConfigureTLS is for
// configurations built elsewhere.)
func ConfigureTLS(cfg *tls.Config, caPool *x509.CertPool) {
	apply := func(c *tls.Config) {
		c.ClientAuth = tls.VerifyClientCertIfGiven
		c.ClientCAs = caPool
		if c.MinVersion < tls.VersionTLS13 {
			c.MinVersion = tls.VersionTLS13
		}
	}
	apply(cfg)
	if inner := cfg.GetConfigForClient; inner != nil {
		cfg.GetConfigForClient = func(hi *tls.ClientHelloInfo) (*tls.Config, error) {
			c, err := inner(hi)
			if c != nil {
				c = c.Clone()
				apply(c)
			}
			return c, err
		}
	}
}

type agentKey struct{}

// AgentFrom returns the authenticated agent of a request that passed the certificate check.
func AgentFrom(ctx context.Context) (Agent, bool) {
	a, ok := ctx.Value(agentKey{}).(Agent)
	return a, ok
}

func unauthenticated(detail string) *api.Problem {
	return api.NewProblem(http.StatusUnauthorized, detail)
}

// requireAgent authenticates the request by its verified client certificate: the certificate
// must chain to the CA (the TLS layer verified it), name a known, unrevoked agent, be that agent's
// current or previous certificate, and be within its validity at the service's clock.
func (s *Service) requireAgent(next api.HandlerFunc) api.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
			return unauthenticated("a client certificate issued by this server's CA is required")
		}
		leaf := r.TLS.VerifiedChains[0][0]
		id := bootstrap.AgentID(leaf)
		if id == "" {
			return unauthenticated("the client certificate names no agent")
		}
		now := s.now()
		if now.After(leaf.NotAfter) || now.Before(leaf.NotBefore) {
			return unauthenticated("the client certificate is outside its validity period")
		}
		a, err := s.st.GetAgent(r.Context(), id)
		if errors.Is(err, ErrNotFound) {
			return unauthenticated("unknown agent")
		} else if err != nil {
			return err
		}
		if a.RevokedAt != nil {
			return api.Forbidden("the agent was revoked; enroll again with a join token")
		}
		serial := serialHex(leaf)
		switch {
		case serial == a.CertSerial:
		case serial == a.PrevSerial && a.PrevSerial != "" && now.Before(a.PrevNotAfter):
		default:
			return unauthenticated("the client certificate is not the agent's current certificate")
		}
		return next(w, r.WithContext(context.WithValue(r.Context(), agentKey{}, a)))
	}
}

func serialHex(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// issue signs a CSR for agentID and returns the PEM certificate, its serial and expiry.
func (s *Service) issue(csrPEM, agentID string) (pemCert []byte, serial string, notAfter time.Time, err error) {
	pemCert, err = bootstrap.IssueClientCert(s.cfg.CA, s.cfg.CAKey, bootstrap.ClientCertRequest{
		CSR: []byte(csrPEM), AgentID: agentID, Validity: s.cfg.CertValidity, Now: s.now()})
	if err != nil {
		return nil, "", time.Time{}, api.Validation(api.FieldError{Field: "csr", Message: err.Error()})
	}
	blk, _ := pem.Decode(pemCert)
	if blk == nil {
		return nil, "", time.Time{}, errors.New("agents: issued certificate is not PEM")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return nil, "", time.Time{}, fmt.Errorf("agents: issued certificate: %w", err)
	}
	return pemCert, serialHex(c), c.NotAfter.UTC(), nil
}

func (s *Service) caPEM() string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.cfg.CA.Raw}))
}

// enroll: the CSR is checked and signed before the token is consumed, so a bad request burns no
// use; the certificate is never sent unless the use was taken and the agent recorded.
func (s *Service) enroll(w http.ResponseWriter, r *http.Request) error {
	var req protocol.EnrollRequest
	if err := api.DecodeJSON(r, &req); err != nil {
		return err
	}
	var fields []api.FieldError
	if req.Token == "" {
		fields = append(fields, api.FieldError{Field: "token", Message: "required"})
	}
	if req.CSR == "" {
		fields = append(fields, api.FieldError{Field: "csr", Message: "required"})
	}
	if req.Hostname == "" || len(req.Hostname) > 253 || !printable(req.Hostname) {
		fields = append(fields, api.FieldError{Field: "hostname", Message: "1 to 253 printable characters"})
	}
	if len(req.MachineID) > 128 || !printable(req.MachineID) {
		fields = append(fields, api.FieldError{Field: "machineId", Message: "at most 128 printable characters"})
	}
	if len(req.Version) > 64 || !printable(req.Version) {
		fields = append(fields, api.FieldError{Field: "agentVersion", Message: "at most 64 printable characters"})
	}
	if len(fields) > 0 {
		return api.Validation(fields...)
	}
	id := "agt-" + randHex(12)
	certPEM, serial, notAfter, err := s.issue(req.CSR, id)
	if err != nil {
		return err
	}
	tok, err := s.redeemToken(r.Context(), req.Token)
	if errors.Is(err, ErrTokenUnusable) {
		return unauthenticated("the join token is invalid, expired, revoked or used up")
	} else if err != nil {
		return err
	}
	now := s.nowUTC()
	a := Agent{ID: id, Account: tok.Account, Hostname: req.Hostname, MachineID: req.MachineID, OS: req.OS,
		Version: req.Version, EnrolledAt: now, TokenID: tok.ID, CertSerial: serial, CertNotAfter: notAfter,
		State: protocol.StateRunning}
	if err := s.st.CreateAgent(r.Context(), a); err != nil {
		return err
	}
	if err := s.refreshHost(r.Context(), a, now); err != nil {
		return err
	}
	s.log.InfoContext(r.Context(), "agent enrolled", "agent", id, "account", a.Account, "hostname", a.Hostname, "token", tok.ID)
	return api.WriteJSON(w, http.StatusOK, protocol.EnrollResponse{AgentID: id, Account: a.Account,
		Certificate: string(certPEM), CA: s.caPEM(), NotAfter: notAfter, HeartbeatSeconds: s.heartbeatSeconds(a)})
}

// hostResource is the agent's host resource, keeping the tags and fields set elsewhere.
func (s *Service) hostResource(ctx context.Context, a Agent) (model.Resource, error) {
	res, _, err := s.hostResourceChanged(ctx, a)
	return res, err
}

// hostResourceChanged is hostResource, and whether it differs from the stored resource (or none
// is stored), so that an unchanged one is not written again on every upload.
func (s *Service) hostResourceChanged(ctx context.Context, a Agent) (model.Resource, bool, error) {
	res, err := s.cfg.Fleet.GetResource(ctx, a.Account, a.ResourceID())
	if err != nil && !isNotFound(err) {
		return res, false, err
	}
	before := res
	before.Metadata = maps.Clone(res.Metadata)
	changed := err != nil
	res.Account, res.ID, res.Type, res.ScanMode = a.Account, a.ResourceID(), model.ResourceHost, ScanModeAgent
	if res.Name == "" {
		res.Name = a.Hostname
	}
	meta := map[string]string{}
	for k, v := range res.Metadata {
		meta[k] = v
	}
	meta["agentId"], meta["hostname"] = a.ID, a.Hostname
	if a.MachineID != "" {
		meta["machineId"] = a.MachineID
	}
	if a.OS != nil && a.OS.PrettyName != "" {
		meta["os"] = a.OS.PrettyName
	}
	res.Metadata = meta
	changed = changed || before.Type != res.Type || before.ScanMode != res.ScanMode || before.Name != res.Name ||
		!maps.Equal(before.Metadata, res.Metadata)
	return res, changed, nil
}

func isNotFound(err error) bool {
	return errors.Is(err, ErrNotFound) || errors.Is(err, store.ErrNotFound)
}

func (s *Service) heartbeatSeconds(a Agent) int {
	if a.HeartbeatSeconds > 0 {
		return a.HeartbeatSeconds
	}
	return s.cfg.HeartbeatSeconds
}

func printable(v string) bool {
	for _, c := range v {
		if c < 0x20 || c == 0x7f {
			return false
		}
	}
	return true
}

func (s *Service) heartbeat(w http.ResponseWriter, r *http.Request) error {
	a, _ := AgentFrom(r.Context())
	var hb protocol.Heartbeat
	if err := api.DecodeJSON(r, &hb); err != nil {
		return err
	}
	if hb.State != protocol.StateRunning && hb.State != protocol.StateShutdown {
		return api.Validation(api.FieldError{Field: "state", Message: "must be RUNNING or SHUTDOWN"})
	}
	if len(hb.Version) > 64 || !printable(hb.Version) {
		return api.Validation(api.FieldError{Field: "agentVersion", Message: "at most 64 printable characters"})
	}
	// Sensors and errors are shown to administrators: bound them.
	sensors := slices.DeleteFunc(slices.Clone(hb.Sensors), func(v string) bool { return !knownSensors[v] })
	slices.Sort(sensors)
	sensors = slices.Compact(sensors)
	errs := hb.Errors
	if len(errs) > 20 {
		errs = errs[:20]
	}
	errs = slices.Clone(errs)
	for i, e := range errs {
		if len(e) > 500 {
			errs[i] = e[:500]
		}
	}
	now := s.nowUTC()
	stateChanged := a.State != hb.State
	if routine := !stateChanged && a.Version == hb.Version && slices.Equal(a.Sensors, sensors) && slices.Equal(a.Errors, errs) &&
		!a.LastHeartbeat.IsZero(); routine && s.cfg.HeartbeatFlush > 0 {
		s.queueHeartbeat(a.ID, now)
	} else {
		rec := Heartbeat{At: now, Version: hb.Version, State: hb.State, Sensors: sensors, Errors: errs}
		if err := s.st.RecordHeartbeat(r.Context(), a.ID, rec); err != nil {
			return err
		}
	}
	a.LastHeartbeat, a.Version, a.State, a.Sensors, a.Errors = now, hb.Version, hb.State, sensors, errs
	if stateChanged {
		if err := s.refreshHost(r.Context(), a, now); err != nil {
			return err
		}
	}
	out := protocol.HeartbeatResponse{HeartbeatSeconds: s.heartbeatSeconds(a),
		// Renew once half of the validity has passed.
		RenewBefore: now.Add(s.cfg.CertValidity / 2)}
	if hb.State == protocol.StateRunning {
		due, err := s.st.DeliverInstructions(r.Context(), a.ID, now, now.Add(-s.cfg.RedeliverAfter))
		if err != nil {
			return err
		}
		for _, in := range due {
			out.Instructions = append(out.Instructions, in.Instruction)
		}
	}
	return api.WriteJSON(w, http.StatusOK, out)
}

func (s *Service) instructionResult(w http.ResponseWriter, r *http.Request) error {
	a, _ := AgentFrom(r.Context())
	var res protocol.InstructionResult
	if err := api.DecodeJSON(r, &res); err != nil {
		return err
	}
	if len(res.Error) > 2000 {
		res.Error = res.Error[:2000]
	}
	err := s.st.CompleteInstruction(r.Context(), a.ID, r.PathValue("instructionId"), res, s.nowUTC())
	if errors.Is(err, ErrNotFound) {
		return api.NotFound("no such instruction for this agent")
	} else if err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Service) renew(w http.ResponseWriter, r *http.Request) error {
	a, _ := AgentFrom(r.Context())
	var req protocol.RenewRequest
	if err := api.DecodeJSON(r, &req); err != nil {
		return err
	}
	if req.CSR == "" {
		return api.Validation(api.FieldError{Field: "csr", Message: "required"})
	}
	certPEM, serial, notAfter, err := s.issue(req.CSR, a.ID)
	if err != nil {
		return err
	}
	if err := s.st.SetCertificate(r.Context(), a.ID, serial, notAfter); err != nil {
		return err
	}
	return api.WriteJSON(w, http.StatusOK, protocol.RenewResponse{Certificate: string(certPEM), NotAfter: notAfter})
}
