package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-sec/vigil/model"
)

// Severity names in increasing order; UNTRIAGED ranks lowest.
var severityRank = map[string]int{
	"UNTRIAGED":     0,
	"INFORMATIONAL": 1,
	"LOW":           2,
	"MEDIUM":        3,
	"HIGH":          4,
	"CRITICAL":      5,
}

// SortField names a finding sort key.
type SortField string

// Finding sort keys. Ties are broken by finding ID and account, so the order is total and pages are
// stable under concurrent inserts.
const (
	SortSeverity      SortField = "severity"
	SortUpdatedAt     SortField = "updatedAt"
	SortFirstObserved SortField = "firstObservedAt"
	SortLastObserved  SortField = "lastObservedAt"
	SortRiskScore     SortField = "riskScore"
	SortEPSS          SortField = "epss"
)

// sortColumns maps a sort key to its column and whether the column is floating point.
var sortColumns = map[SortField]struct {
	col   string
	float bool
	index string // the (account, col, id) index
}{
	SortSeverity:      {"severity_rank", false, "findings_sort_severity"},
	SortUpdatedAt:     {"updated_at", false, "findings_sort_updated"},
	SortFirstObserved: {"first_observed", false, "findings_sort_first"},
	SortLastObserved:  {"last_observed", false, "findings_sort_last"},
	SortRiskScore:     {"risk_score", true, "findings_sort_risk"},
	SortEPSS:          {"epss", true, "findings_sort_epss"},
}

// FindingQuery selects and orders findings for ListFindings.
type FindingQuery struct {
	Filter model.FindingFilter
	// Sort defaults to SortSeverity; the order is descending unless Ascending.
	Sort      SortField
	Ascending bool
	// PageSize defaults to 100 and is at most 1000.
	PageSize int
	// PageToken continues a listing; it is valid only with the same sort and direction.
	PageToken string
}

// FindingPage is one page of findings; NextToken is empty on the last page.
type FindingPage struct {
	Findings  []model.Finding
	NextToken string
}

type findingToken struct {
	Sort    SortField `json:"s"`
	Asc     bool      `json:"a,omitempty"`
	Key     string    `json:"k"` // the sort column's value, formatted exactly
	ID      string    `json:"i"`
	Account string    `json:"c"`
}

// effectiveAccounts intersects the accounts a caller may touch with the filter's own account list.
func effectiveAccounts(accounts []string, f model.FindingFilter) []string {
	if len(f.Accounts) == 0 {
		return accounts
	}
	var out []string
	for _, a := range accounts {
		if slices.Contains(f.Accounts, a) {
			out = append(out, a)
		}
	}
	return out
}

// findingWhere renders a filter as SQL conditions over findings aliased f. An empty result set is
// expressed as a false condition.
//
// Package and tag conditions are uncorrelated IN subqueries (the planner may start from the package
// or tag index) unless corr asks for EXISTS tests checked row by row during an ordered scan.
func findingWhere(accounts []string, f model.FindingFilter, corr correlation) ([]string, []any) {
	eff := effectiveAccounts(accounts, f)
	if len(eff) == 0 {
		return []string{"1 = 0"}, nil
	}
	var (
		where = []string{`f.account IN (` + placeholders(len(eff)) + `)`}
		args  = anys(eff)
	)
	in := func(col string, vals []string) {
		if len(vals) > 0 {
			where = append(where, col+` IN (`+placeholders(len(vals))+`)`)
			args = append(args, anys(vals)...)
		}
	}
	if len(f.Severities) > 0 {
		// The rank is what the indexes hold; an unknown severity matches nothing.
		ranks := make([]any, 0, len(f.Severities))
		for _, sev := range f.Severities {
			r, ok := severityRank[sev]
			if !ok {
				r = -1
			}
			ranks = append(ranks, r)
		}
		where = append(where, `f.severity_rank IN (`+placeholders(len(ranks))+`)`)
		args = append(args, ranks...)
	}
	in("f.status", f.Statuses)
	in("f.type", f.Types)
	in("f.vulnerability_id", f.VulnerabilityIDs)
	in("f.resource_id", f.ResourceIDs)
	in("f.resource_type", f.ResourceTypes)
	in("f.image_repository", f.ImageRepositories)
	in("f.fix_available", f.FixAvailable)
	in("f.exploit_available", f.ExploitAvailable)
	accIn := `IN (` + placeholders(len(eff)) + `)`
	if len(f.PackageNames) > 0 || len(f.PackageVersions) > 0 {
		// Name and version must hold for the same vulnerable package.
		var cond string
		if corr.packages {
			cond = `EXISTS (SELECT 1 FROM finding_packages p WHERE p.account = f.account AND p.finding_id = f.id`
		} else {
			cond = `(f.account, f.id) IN (SELECT p.account, p.finding_id FROM finding_packages p WHERE p.account ` + accIn
			args = append(args, anys(eff)...)
		}
		if len(f.PackageNames) > 0 {
			cond += ` AND p.name IN (` + placeholders(len(f.PackageNames)) + `)`
			args = append(args, anys(f.PackageNames)...)
		}
		if len(f.PackageVersions) > 0 {
			cond += ` AND p.version IN (` + placeholders(len(f.PackageVersions)) + `)`
			args = append(args, anys(f.PackageVersions)...)
		}
		cond += `)`
		if corr.hashPackages && !corr.packages {
			cond = `(` + cond + ` OR FALSE)`
		}
		where = append(where, cond)
	}
	keys := make([]string, 0, len(f.ResourceTags))
	for k := range f.ResourceTags {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if corr.tags {
			where = append(where, `EXISTS (SELECT 1 FROM resource_tags t WHERE t.account = f.account AND t.resource_id = f.resource_id AND t.key = ? AND t.value = ?)`)
			args = append(args, k, f.ResourceTags[k])
			continue
		}
		where = append(where, `(f.account, f.resource_id) IN (SELECT t.account, t.resource_id FROM resource_tags t WHERE t.account `+accIn+` AND t.key = ? AND t.value = ?)`)
		args = append(args, anys(eff)...)
		args = append(args, k, f.ResourceTags[k])
	}
	num := func(col string, r *model.NumberRange) {
		if r == nil {
			return
		}
		if r.Min != nil {
			where = append(where, col+` >= ?`)
			args = append(args, *r.Min)
		}
		if r.Max != nil {
			where = append(where, col+` <= ?`)
			args = append(args, *r.Max)
		}
	}
	num("f.epss", f.EPSS)
	num("f.risk_score", f.RiskScore)
	tr := func(col string, r *model.TimeRange) {
		if r == nil {
			return
		}
		if r.From != nil {
			where = append(where, col+` >= ?`)
			args = append(args, r.From.UnixMicro())
		}
		if r.To != nil {
			where = append(where, col+` <= ?`)
			args = append(args, r.To.UnixMicro())
		}
	}
	tr("f.first_observed", f.FirstObserved)
	tr("f.last_observed", f.LastObserved)
	return where, args
}

// maxMergeAccounts bounds the per-account merge of ListFindings; larger sets use one plain query.
const maxMergeAccounts = 32

// ListFindings lists the accounts' findings that match the query, with keyset pagination: a page
// costs the same however deep it is, and rows inserted or deleted elsewhere never shift a page.
//
// Findings are ordered by (sort key, ID, account). For several accounts the store reads one ordered
// index range per account and merges them (a UNION ALL of per-account LIMITed scans), so a delegated
// administrator's page costs one page per member account instead of a sort of the whole fleet.
func (s *Store) ListFindings(ctx context.Context, accounts []string, q FindingQuery) (FindingPage, error) {
	var page FindingPage
	if err := checkAccounts(accounts); err != nil {
		return page, err
	}
	if q.Sort == "" {
		q.Sort = SortSeverity
	}
	sc, ok := sortColumns[q.Sort]
	if !ok {
		return page, fmt.Errorf("%w: unknown sort %q", ErrInvalid, q.Sort)
	}
	var (
		tok    *findingToken
		tokKey any
	)
	if q.PageToken != "" {
		tok = new(findingToken)
		if err := decodeToken(q.PageToken, tok); err != nil {
			return page, err
		}
		if tok.Sort != q.Sort || tok.Asc != q.Ascending {
			return page, fmt.Errorf("%w: token was made for another sort order", ErrBadToken)
		}
		var err error
		if sc.float {
			tokKey, err = strconv.ParseFloat(tok.Key, 64)
		} else {
			tokKey, err = strconv.ParseInt(tok.Key, 10, 64)
		}
		if err != nil {
			return page, ErrBadToken
		}
	}
	cmp, dir := "<", "DESC"
	if q.Ascending {
		cmp, dir = ">", "ASC"
	}
	col := "f." + sc.col
	size := pageSize(q.PageSize)
	limit := fmt.Sprintf(` LIMIT %d`, size+1)
	eff := effectiveAccounts(accounts, q.Filter)
	filter := q.Filter
	filter.Accounts = nil

	// arm selects one ordered, limited range of keys for the accounts.
	arm := func(accs []string) (string, []any, error) {
		plan, err := s.findingPlan(ctx, accs, filter, sc.index, size)
		if err != nil {
			return "", nil, err
		}
		where, args := findingWhere(accs, filter, plan.corr)
		if tok != nil {
			// The two-column bound lets the planner seek the (account, key, id) index; the
			// three-column test is exact at the boundary. Both compare in the database's own
			// collation, as ORDER BY does.
			where = append(where, `(`+col+`, f.id) `+cmp+`= (?, ?)`, `(`+col+`, f.id, f.account) `+cmp+` (?, ?, ?)`)
			args = append(args, tokKey, tok.ID, tokKey, tok.ID, tok.Account)
		}
		order := col
		if plan.seek && s.dialect == Postgres {
			// PostgreSQL has no index hints: ordering by an expression takes the sort index out of
			// the running, so its planner reads the few matches through the filter's index and sorts.
			order = "(" + col + " + 0)"
		}
		return `SELECT f.account AS account, f.id AS id, ` + col + ` AS sk FROM ` + plan.from + ` WHERE ` + strings.Join(where, " AND ") +
			fmt.Sprintf(` ORDER BY %s %s, f.id %s, f.account %s`, order, dir, dir, dir) + limit, args, nil
	}
	var (
		keys string
		args []any
	)
	switch {
	case len(eff) == 0:
		return page, nil
	case len(eff) == 1 || len(eff) > maxMergeAccounts:
		var err error
		if keys, args, err = arm(eff); err != nil {
			return page, err
		}
	default:
		sorted := slices.Clone(eff)
		slices.Sort(sorted)
		parts := make([]string, 0, len(sorted))
		for i, a := range slices.Compact(sorted) {
			sql, a, err := arm([]string{a})
			if err != nil {
				return page, err
			}
			parts = append(parts, fmt.Sprintf(`SELECT * FROM (%s) AS a%d`, sql, i))
			args = append(args, a...)
		}
		keys = strings.Join(parts, " UNION ALL ")
	}
	// MATERIALIZED keeps the planner from pushing the document join into each arm: only the rows of
	// the final page fetch their document (and lastObservedAt, so the arms stay index-only).
	query := `WITH k AS MATERIALIZED (SELECT * FROM (` + keys + `) AS u` + fmt.Sprintf(` ORDER BY u.sk %s, u.id %s, u.account %s`, dir, dir, dir) + limit +
		`) SELECT k.account, k.id, k.sk, f.last_observed, d.data FROM k JOIN finding_data d ON d.account = k.account AND d.id = k.id` +
		` JOIN findings f ON f.account = k.account AND f.id = k.id` +
		fmt.Sprintf(` ORDER BY k.sk %s, k.id %s, k.account %s`, dir, dir, dir)
	rows, err := s.query(ctx, s.db, query, args...)
	if err != nil {
		return page, fmt.Errorf("store: list findings: %w", err)
	}
	defer rows.Close()
	var last findingToken
	for rows.Next() {
		var (
			acc, id, data string
			ikey, lo      int64
			fkey          float64
			keyDst        any = &ikey
		)
		if sc.float {
			keyDst = &fkey
		}
		if err := rows.Scan(&acc, &id, keyDst, &lo, &data); err != nil {
			return page, fmt.Errorf("store: list findings: %w", err)
		}
		if len(page.Findings) == size {
			page.NextToken = encodeToken(last)
			break
		}
		var fd model.Finding
		if err := decodeFinding(data, lo, &fd); err != nil {
			return page, fmt.Errorf("store: finding %s: %w", id, err)
		}
		page.Findings = append(page.Findings, fd)
		last = findingToken{Sort: q.Sort, Asc: q.Ascending, ID: id, Account: acc}
		if sc.float {
			last.Key = strconv.FormatFloat(fkey, 'g', -1, 64)
		} else {
			last.Key = strconv.FormatInt(ikey, 10)
		}
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("store: list findings: %w", err)
	}
	return page, nil
}

// correlation says which subquery conditions findingWhere writes as correlated EXISTS tests.
type correlation struct {
	tags, packages bool
	// hashPackages (PostgreSQL, uncorrelated packages): test each row walked against the package's
	// findings, hashed once. A top-level IN becomes a semi-join whose nested loop probes the package
	// index per row; under OR it stays a subplan, hashed while it fits work_mem, so this is written
	// only when a probe bounded the matches.
	hashPackages bool
}

// Plan probes. Reading a condition's n matches through its index and sorting them costs about n rows;
// walking the sort index costs about pageSize·N/n rows (N findings). The first is cheaper while
// n < sqrt(pageSize·N), so that is how far a probe counts (at least minProbeRows); either way a page
// costs at most about sqrt(pageSize·N) rows: 10,000 at a million findings.
const (
	minProbeRows   = 2000
	probeResources = 20
	// A package match read through the package index costs about 14 rows of a walk, so reading the
	// matches pays below about a fifth of probeRows matches (sqrt(pageSize·N/14), and one account
	// holds fewer findings than the table): measured at a million findings, a package matching 1,900
	// of an account's 500,000 costs the same either way on SQLite; on PostgreSQL a hashed walk
	// of a package matching 4,300 took 8 ms against 41 ms.
	packageSeekShare = 5
)

// listPlan is how one arm of a listing reads findings.
type listPlan struct {
	from string      // the FROM clause
	corr correlation // how to write the subquery conditions
	seek bool        // a filter's index drives, not the sort index
}

// findingPlan picks the index a listing reads. Planners cost LIMIT queries optimistically: with
// ORDER BY they walk the sort index even when the filter is rare, testing every row (hundreds of
// milliseconds at a million rows: SQLite for a rare status, PostgreSQL for a package or a resource
// type that matches nothing, statistics or not), or seek a dense filter and sort every match. Bounded
// probes (at most probeRows index entries each) measure every candidate driving condition, and the
// rarest drives. On SQLite the plan names its index (INDEXED BY); on PostgreSQL a plan that seeks a
// filter orders by an expression so that the sort index cannot be walked, and its planner picks the
// filter index from its statistics.
func (s *Store) findingPlan(ctx context.Context, accs []string, f model.FindingFilter, sortIndex string, pageSize int) (listPlan, error) {
	all := correlation{tags: true, packages: true}
	pg := s.dialect == Postgres
	if len(accs) > maxMergeAccounts {
		return listPlan{from: "findings f"}, nil
	}
	index := func(name string) string {
		if pg {
			return "findings f"
		}
		return "findings f INDEXED BY " + name
	}
	if len(f.VulnerabilityIDs) == 1 && len(accs) == 1 && sortIndex == sortColumns[SortSeverity].index {
		// One vulnerability's findings in severity order are an ordered range of findings_vuln, the
		// cheapest plan however many match; PostgreSQL's planner finds it when nothing hides the order.
		if pg {
			return listPlan{from: "findings f"}, nil
		}
		return listPlan{from: index("findings_vuln"), corr: all, seek: true}, nil
	}
	// SQLite: MAX(rowid) is one index step and bounds the number of findings from above. PostgreSQL:
	// the planner's row estimate (-1 before the table was first analyzed).
	count := `SELECT COALESCE(MAX(rowid), 0) FROM findings`
	if pg {
		count = `SELECT GREATEST(reltuples, 0)::BIGINT FROM pg_class WHERE oid = 'findings'::regclass`
	}
	var total int64
	if err := s.queryRow(ctx, s.db, count).Scan(&total); err != nil {
		return listPlan{}, fmt.Errorf("store: list findings: probe: %w", err)
	}
	probeRows := max(minProbeRows, int(math.Sqrt(float64(pageSize)*float64(total))))
	accIn := `account IN (` + placeholders(len(accs)) + `)`
	probe := func(limit int, query string, args ...any) (int, error) {
		var n int
		err := s.queryRow(ctx, s.db, `SELECT COUNT(*) FROM (`+query+` LIMIT `+strconv.Itoa(limit)+`) AS p`, append(anys(accs), args...)...).Scan(&n)
		if err != nil {
			return 0, fmt.Errorf("store: list findings: probe: %w", err)
		}
		return n, nil
	}
	type candidate struct {
		from string
		corr correlation
		n    int
	}
	best := candidate{from: index(sortIndex), corr: all, n: probeRows}
	if pg {
		// Both subquery forms become semi-joins the planner may start from either side.
		best.corr = correlation{}
	}
	try := func(from string, corr correlation, limit int, query string, args ...any) error {
		if pg {
			corr = correlation{}
		}
		n, err := probe(limit, query, args...)
		if err != nil {
			return err
		}
		if limit != probeRows {
			n = n * probeRows / limit // scale a resource count or a weighed count to comparable rows
		}
		if n < best.n {
			best = candidate{from, corr, n}
		}
		return nil
	}
	in := func(vals []string) string { return ` IN (` + placeholders(len(vals)) + `)` }
	var (
		err          error
		hashPackages bool // the package's matches are few enough to hash
	)
	if len(f.VulnerabilityIDs) > 0 {
		err = try(index("findings_vuln"), all, probeRows,
			`SELECT 1 FROM findings WHERE `+accIn+` AND vulnerability_id`+in(f.VulnerabilityIDs), anys(f.VulnerabilityIDs)...)
	}
	if err == nil && len(f.ResourceIDs) > 0 {
		err = try(index("findings_resource"), all, probeRows,
			`SELECT 1 FROM findings WHERE `+accIn+` AND resource_id`+in(f.ResourceIDs), anys(f.ResourceIDs)...)
	}
	if err == nil && len(f.ImageRepositories) > 0 {
		err = try(index("findings_repo"), all, probeRows,
			`SELECT 1 FROM findings WHERE `+accIn+` AND image_repository`+in(f.ImageRepositories), anys(f.ImageRepositories)...)
	}
	if err == nil && (len(f.PackageNames) > 0 || len(f.PackageVersions) > 0) {
		q, args := `SELECT 1 FROM finding_packages WHERE `+accIn, []any{}
		if len(f.PackageNames) > 0 {
			q, args = q+` AND name`+in(f.PackageNames), append(args, anys(f.PackageNames)...)
		}
		if len(f.PackageVersions) > 0 {
			q, args = q+` AND version`+in(f.PackageVersions), append(args, anys(f.PackageVersions)...)
		}
		// Driven by the package index through the uncorrelated IN and the findings primary key. Left
		// to itself (no statistics) SQLite walks the default sort index testing the IN list instead.
		// A match read so costs several rows of a walk (random lookups of the finding and its row,
		// against index steps in order with one covering probe, or a hash probe, each): each match
		// weighs packageSeekShare rows. PostgreSQL counts further, to know when a walk may hash them.
		limit := probeRows / packageSeekShare
		if pg {
			limit = probeRows
		}
		var n int
		if n, err = probe(limit, q, args...); err == nil {
			hashPackages = pg && n < probeRows
			if n < limit && n*packageSeekShare < best.n {
				n *= packageSeekShare
				best = candidate{index("sqlite_autoindex_findings_1"), correlation{tags: true}, n}
				if pg {
					best.corr = correlation{}
				}
			}
		}
	}
	for k, v := range f.ResourceTags {
		if err != nil {
			break
		}
		err = try(index("findings_resource"), correlation{packages: true}, probeResources,
			`SELECT 1 FROM resource_tags WHERE `+accIn+` AND key = ? AND value = ?`, k, v)
	}
	low := model.FindingFilter{Severities: f.Severities, Statuses: f.Statuses, ExploitAvailable: f.ExploitAvailable,
		FixAvailable: f.FixAvailable, ResourceTypes: f.ResourceTypes, Types: f.Types}
	if err == nil && len(low.Severities)+len(low.Statuses)+len(low.ExploitAvailable)+len(low.FixAvailable)+len(low.ResourceTypes)+len(low.Types) > 0 {
		where, args := findingWhere(accs, low, correlation{})
		from := index(lowcardIndex(low))
		n := 0
		if pg {
			// Counting a dense combination (ACTIVE + HIGH) costs milliseconds of heap visits on
			// recently written rows. PostgreSQL's per-column statistics say when it is dense; a rare
			// estimate (or none, before the first ANALYZE) is checked by counting.
			n, err = s.estimateRows(ctx, `SELECT 1 FROM findings f WHERE `+strings.Join(where, " AND "), args...)
		}
		if err == nil && n < probeRows {
			err = s.queryRow(ctx, s.db, `SELECT COUNT(*) FROM (SELECT 1 FROM `+from+` WHERE `+
				strings.Join(where, " AND ")+` LIMIT `+strconv.Itoa(probeRows)+`) AS p`, args...).Scan(&n)
		}
		if err != nil {
			err = fmt.Errorf("store: list findings: probe: %w", err)
		} else if n < best.n {
			best = candidate{from, all, n}
			if pg {
				best.corr = correlation{}
			}
		}
	}
	if err != nil {
		return listPlan{}, err
	}
	seek := best.n < probeRows
	if !seek && hashPackages {
		best.corr.hashPackages = true
	}
	return listPlan{from: best.from, corr: best.corr, seek: seek}, nil
}

// estimateRows returns PostgreSQL's estimate of the rows query returns.
func (s *Store) estimateRows(ctx context.Context, query string, args ...any) (int, error) {
	var doc string
	if err := s.queryRow(ctx, s.db, `EXPLAIN (FORMAT JSON) `+query, args...).Scan(&doc); err != nil {
		return 0, err
	}
	var plan []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		}
	}
	if err := json.Unmarshal([]byte(doc), &plan); err != nil || len(plan) == 0 {
		return 0, fmt.Errorf("explain: %q: %v", doc, err)
	}
	return int(min(plan[0].Plan.Rows, math.MaxInt32)), nil
}

// lowcardIndex names the index that seeks the low-cardinality conditions of f: the one led by the
// leftmost filtered column. Without a leading condition an index is scanned whole (SQLite skips a
// leading column only when ANALYZE statistics say it is worth it), however few rows match.
func lowcardIndex(f model.FindingFilter) string {
	switch {
	case len(f.Severities) > 0: // (severity, status, exploit, fix, resource type, type): covers all
		return "findings_lowcard"
	case len(f.Statuses) > 0: // (status, resource type, type)
		return "findings_status"
	case len(f.ResourceTypes) > 0 || len(f.Types) > 0: // (resource type, type)
		return "findings_rtype"
	}
	return "findings_lowcard"
}

// CountFindings counts the accounts' findings that match the filter.
func (s *Store) CountFindings(ctx context.Context, accounts []string, f model.FindingFilter) (int, error) {
	if err := checkAccounts(accounts); err != nil {
		return 0, err
	}
	where, args := findingWhere(accounts, f, correlation{})
	var n int
	if err := s.queryRow(ctx, s.db, `SELECT COUNT(*) FROM findings f WHERE `+strings.Join(where, " AND "), args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("store: count findings: %w", err)
	}
	return n, nil
}

// GetFinding returns the finding with the ID if it belongs to one of the accounts.
func (s *Store) GetFinding(ctx context.Context, accounts []string, id string) (model.Finding, error) {
	var fd model.Finding
	if err := checkAccounts(accounts); err != nil {
		return fd, err
	}
	var (
		data string
		lo   int64
	)
	err := s.queryRow(ctx, s.db, `SELECT d.data, f.last_observed FROM finding_data d JOIN findings f ON f.account = d.account AND f.id = d.id
		WHERE d.id = ? AND d.account IN (`+placeholders(len(accounts))+`) ORDER BY d.account LIMIT 1`,
		append([]any{id}, anys(accounts)...)...).Scan(&data, &lo)
	if errors.Is(err, sql.ErrNoRows) {
		return fd, notFound("finding", id)
	}
	if err != nil {
		return fd, fmt.Errorf("store: get finding %s: %w", id, err)
	}
	if err := decodeFinding(data, lo, &fd); err != nil {
		return fd, fmt.Errorf("store: finding %s: %w", id, err)
	}
	return fd, nil
}

// decodeFinding reads a finding document; lastObservedAt comes from its column, which
// Changes.Observed moves without rewriting the document.
func decodeFinding(data string, lastObserved int64, fd *model.Finding) error {
	if err := json.Unmarshal([]byte(data), fd); err != nil {
		return err
	}
	fd.LastObservedAt = fromMicros(lastObserved)
	return nil
}

// ResourceFindings returns every finding of one of the account's resources (any status), ordered by
// ID: what the lifecycle code compares a new match result with.
func (s *Store) ResourceFindings(ctx context.Context, account, resourceID string) ([]model.Finding, error) {
	// Without statistics SQLite walks the primary key in ID order across the account, which
	// reads every finding of the fleet; the resource's index then a sort of a few hundred is right.
	from := `findings f`
	if s.dialect == SQLite {
		from = `findings f INDEXED BY findings_resource`
	}
	rows, err := s.query(ctx, s.db, `SELECT f.resource_id, d.data, f.last_observed FROM `+from+`
		JOIN finding_data d ON d.account = f.account AND d.id = f.id
		WHERE f.account = ? AND f.resource_id = ? ORDER BY f.id`, account, resourceID)
	var out []model.Finding
	if err == nil {
		err = scanFindingRows(rows, func(_ string, f model.Finding) { out = append(out, f) })
	}
	if err != nil {
		return nil, fmt.Errorf("store: resource %s findings: %w", resourceID, err)
	}
	return out, nil
}

// FindingsByVulnerability returns, grouped by resource ID and ordered by finding ID, the stored
// findings (any status) of the account's resources whose vulnerability ID is one of those listed
// for their resource: what a feed delta re-examines for a batch of resources, read with one
// statement per few thousand (resource, vulnerability) pairs instead of one query per resource.
func (s *Store) FindingsByVulnerability(ctx context.Context, account string, vulns map[string][]string) (map[string][]model.Finding, error) {
	var rids, vids []string
	for rid, vs := range vulns {
		for _, v := range vs {
			rids, vids = append(rids, rid), append(vids, v)
		}
	}
	out := map[string][]model.Finding{}
	add := func(rid string, f model.Finding) { out[rid] = append(out[rid], f) }
	if s.dialect == SQLite {
		// One prepared probe per pair: in process, a probe costs microseconds, and its plan (the
		// whole index key bound, the join order fixed) leaves the planner nothing to choose. A join
		// with a JSON array of pairs ran for minutes inside one statement at 2.3 M findings after
		// PRAGMA optimize; the plan it took there was not reproduced on a small database.
		stmt, err := s.db.PrepareContext(ctx, s.byVulnerabilityQuery())
		if err != nil {
			return nil, fmt.Errorf("store: findings by vulnerability: %w", err)
		}
		defer stmt.Close()
		for i := range rids {
			rows, err := stmt.QueryContext(ctx, account, rids[i], vids[i])
			if err == nil {
				err = scanFindingRows(rows, add)
			}
			if err != nil {
				return nil, fmt.Errorf("store: findings by vulnerability: %w", err)
			}
		}
	} else {
		const chunk = 5000
		for lo := 0; lo < len(rids); lo += chunk {
			hi := min(lo+chunk, len(rids))
			rows, err := s.query(ctx, s.db, s.byVulnerabilityQuery(), rids[lo:hi], vids[lo:hi], account)
			if err == nil {
				err = scanFindingRows(rows, add)
			}
			if err != nil {
				return nil, fmt.Errorf("store: findings by vulnerability: %w", err)
			}
		}
	}
	for _, fs := range out {
		slices.SortFunc(fs, func(a, b model.Finding) int { return strings.Compare(a.ID, b.ID) })
	}
	return out, nil
}

// byVulnerabilityQuery reads findings by (resource, vulnerability ID) pairs, each one probe of the
// resource index: on SQLite one pair per execution, on PostgreSQL the pairs as two arrays (one
// statement text whatever their number).
func (s *Store) byVulnerabilityQuery() string {
	if s.dialect == SQLite {
		return `SELECT f.resource_id, d.data, f.last_observed FROM findings f INDEXED BY findings_resource CROSS JOIN finding_data d
		WHERE f.account = ? AND f.resource_id = ? AND f.vulnerability_id = ? AND d.account = f.account AND d.id = f.id`
	}
	return `SELECT f.resource_id, d.data, f.last_observed FROM unnest(?::text[], ?::text[]) AS q (rid, vid)
		JOIN findings f ON f.account = ? AND f.resource_id = q.rid AND f.vulnerability_id = q.vid
		JOIN finding_data d ON d.account = f.account AND d.id = f.id`
}

// scanFindingRows reads rows of (resource ID, document, last_observed), closing them.
func scanFindingRows(rows *sql.Rows, fn func(resourceID string, f model.Finding)) error {
	defer rows.Close()
	for rows.Next() {
		var (
			rid, data string
			lo        int64
		)
		if err := rows.Scan(&rid, &data, &lo); err != nil {
			return err
		}
		var f model.Finding
		if err := decodeFinding(data, lo, &f); err != nil {
			return err
		}
		fn(rid, f)
	}
	return rows.Err()
}

// GroupBy names an aggregation.
type GroupBy string

// Aggregations: severity counts of findings grouped by one dimension.
const (
	ByResource        GroupBy = "resource"
	ByPackage         GroupBy = "package"
	ByVulnerability   GroupBy = "vulnerability"
	ByImageRepository GroupBy = "imageRepository"
	ByImageLayer      GroupBy = "imageLayer"
	ByAccount         GroupBy = "account"
	ByResourceType    GroupBy = "resourceType"
)

// SeverityCounts counts findings by severity.
type SeverityCounts struct {
	Critical      int `json:"critical"`
	High          int `json:"high"`
	Medium        int `json:"medium"`
	Low           int `json:"low"`
	Informational int `json:"informational"`
	Untriaged     int `json:"untriaged"`
	Total         int `json:"all"`
}

// AggregateRow is one group. Account is set when grouping by resource or by account.
type AggregateRow struct {
	Account string         `json:"account,omitempty"`
	Key     string         `json:"key"`
	Counts  SeverityCounts `json:"severityCounts"`
	// FixAvailable and ExploitAvailable count the group's findings with a fix (YES or PARTIAL)
	// and with a known exploit; Resources counts the distinct resources the group touches.
	FixAvailable     int `json:"fixAvailableCount"`
	ExploitAvailable int `json:"exploitAvailableCount"`
	Resources        int `json:"affectedResources"`
}

// AggregateSort orders aggregation groups; every order ends with the group key, so it is total.
type AggregateSort string

// Aggregation orders. Count orders are descending unless the query says Ascending.
const (
	// AggSortCritical (the default): by critical, high, medium, low counts, then total.
	AggSortCritical AggregateSort = "critical"
	AggSortHigh     AggregateSort = "high"
	AggSortMedium   AggregateSort = "medium"
	AggSortLow      AggregateSort = "low"
	AggSortAll      AggregateSort = "all"
	// AggSortResources orders by the number of affected resources.
	AggSortResources AggregateSort = "affectedResources"
	// AggSortKey orders by the group key alone, ascending unless the query says Descending.
	AggSortKey AggregateSort = "key"
)

var aggSortColumns = map[AggregateSort][]string{
	AggSortCritical:  {"c", "h", "m", "l", "t"},
	AggSortHigh:      {"h", "c", "m", "l", "t"},
	AggSortMedium:    {"m", "c", "h", "l", "t"},
	AggSortLow:       {"l", "c", "h", "m", "t"},
	AggSortAll:       {"t", "c", "h", "m", "l"},
	AggSortResources: {"r", "c", "h", "m", "l", "t"},
	AggSortKey:       nil,
}

// AggregateQuery selects the findings to aggregate.
type AggregateQuery struct {
	GroupBy GroupBy
	Filter  model.FindingFilter
	// Sort defaults to AggSortCritical. Count orders are descending and AggSortKey ascending;
	// Ascending reverses a count order, and Descending a key order.
	Sort       AggregateSort
	Ascending  bool
	Descending bool
	// Limit bounds the number of groups per page (default 100, at most 1000).
	Limit int
	// PageToken continues an aggregation; it is valid only with the same grouping and order.
	PageToken string
}

// AggregatePage is one page of groups; NextToken is empty on the last page.
type AggregatePage struct {
	Rows      []AggregateRow
	NextToken string
}

type aggToken struct {
	By     GroupBy       `json:"b"`
	Sort   AggregateSort `json:"s"`
	Asc    bool          `json:"a,omitempty"`
	Desc   bool          `json:"d,omitempty"`
	Offset int           `json:"o"`
}

// Aggregate returns the first page of AggregatePage.
func (s *Store) Aggregate(ctx context.Context, accounts []string, q AggregateQuery) ([]AggregateRow, error) {
	q.PageToken = ""
	p, err := s.AggregatePage(ctx, accounts, q)
	return p.Rows, err
}

// AggregatePage counts the accounts' matching findings by severity per group. Grouping by package
// or layer counts a finding once per distinct package name or layer it lists.
//
// Groups are computed afresh for every page and paged by offset: a group's counts, and so its
// place, may change between pages while findings change. Aggregations are summaries, not a ledger;
// a keyset over six count columns would cost more than it saves.
func (s *Store) AggregatePage(ctx context.Context, accounts []string, q AggregateQuery) (AggregatePage, error) {
	var page AggregatePage
	if err := checkAccounts(accounts); err != nil {
		return page, err
	}
	if q.Sort == "" {
		q.Sort = AggSortCritical
	}
	sortCols, ok := aggSortColumns[q.Sort]
	if !ok {
		return page, fmt.Errorf("%w: unknown aggregation sort %q", ErrInvalid, q.Sort)
	}
	offset := 0
	if q.PageToken != "" {
		var tok aggToken
		if err := decodeToken(q.PageToken, &tok); err != nil {
			return page, err
		}
		if tok.By != q.GroupBy || tok.Sort != q.Sort || tok.Asc != q.Ascending || tok.Desc != q.Descending || tok.Offset < 0 {
			return page, fmt.Errorf("%w: token was made for another aggregation", ErrBadToken)
		}
		offset = tok.Offset
	}
	where, args := findingWhere(accounts, q.Filter, correlation{})
	var (
		from     = `findings f`
		acc, key string
		extra    string
	)
	switch q.GroupBy {
	case ByResource:
		acc, key = "f.account", "f.resource_id"
	case ByAccount:
		acc, key = "f.account", "f.account"
	case ByVulnerability:
		key = "f.vulnerability_id"
	case ByResourceType:
		key = "f.resource_type"
	case ByImageRepository:
		key, extra = "f.image_repository", "f.image_repository <> ''"
	case ByPackage:
		from = `findings f JOIN finding_packages p ON p.account = f.account AND p.finding_id = f.id`
		key = "p.name"
	case ByImageLayer:
		from = `findings f JOIN finding_packages p ON p.account = f.account AND p.finding_id = f.id`
		key, extra = "p.layer", "p.layer <> ''"
	default:
		return page, fmt.Errorf("%w: unknown aggregation %q", ErrInvalid, q.GroupBy)
	}
	if extra != "" {
		where = append(where, extra)
	}
	accSel := "''"
	group := key
	if acc != "" {
		accSel = acc
		if acc != key {
			group = acc + ", " + key
		}
	}
	// A finding is one row unless the grouping joins its packages; there COUNT(DISTINCT id) keeps a
	// finding that lists one package twice from counting twice (finding IDs embed the account).
	when := func(cond string) string { return fmt.Sprintf(`SUM(CASE WHEN %s THEN 1 ELSE 0 END)`, cond) }
	total := `COUNT(*)`
	if strings.Contains(from, "JOIN") {
		when = func(cond string) string { return fmt.Sprintf(`COUNT(DISTINCT CASE WHEN %s THEN f.id END)`, cond) }
		total = `COUNT(DISTINCT f.id)`
	}
	count := func(rank int) string { return when(fmt.Sprintf(`f.severity_rank = %d`, rank)) }
	keyDir, countDir := "ASC", "DESC"
	if q.Ascending {
		countDir = "ASC"
	}
	if q.Sort == AggSortKey && q.Descending {
		keyDir = "DESC"
	}
	var order []string
	for _, c := range sortCols {
		order = append(order, c+" "+countDir)
	}
	for _, g := range strings.Split(group, ", ") {
		order = append(order, g+" "+keyDir)
	}
	size := pageSize(q.Limit)
	query := `SELECT ` + accSel + `, ` + key + `, ` +
		count(5) + ` AS c, ` + count(4) + ` AS h, ` + count(3) + ` AS m, ` +
		count(2) + ` AS l, ` + count(1) + ` AS i, ` + count(0) + ` AS u, ` +
		total + ` AS t, ` + when(`f.fix_available IN ('YES', 'PARTIAL')`) + ` AS fx, ` +
		when(`f.exploit_available = 'YES'`) + ` AS ex, COUNT(DISTINCT f.account || '/' || f.resource_id) AS r FROM ` +
		from + ` WHERE ` + strings.Join(where, " AND ") + ` GROUP BY ` + group + ` ORDER BY ` + strings.Join(order, ", ") +
		fmt.Sprintf(` LIMIT %d OFFSET %d`, size+1, offset)
	rows, err := s.query(ctx, s.db, query, args...)
	if err != nil {
		return page, fmt.Errorf("store: aggregate by %s: %w", q.GroupBy, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r AggregateRow
		c := &r.Counts
		if err := rows.Scan(&r.Account, &r.Key, &c.Critical, &c.High, &c.Medium, &c.Low, &c.Informational, &c.Untriaged, &c.Total,
			&r.FixAvailable, &r.ExploitAvailable, &r.Resources); err != nil {
			return page, fmt.Errorf("store: aggregate by %s: %w", q.GroupBy, err)
		}
		page.Rows = append(page.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return page, fmt.Errorf("store: aggregate by %s: %w", q.GroupBy, err)
	}
	if len(page.Rows) > size {
		page.Rows = page.Rows[:size]
		page.NextToken = encodeToken(aggToken{By: q.GroupBy, Sort: q.Sort, Asc: q.Ascending, Desc: q.Descending, Offset: offset + size})
	}
	return page, nil
}

// Changes is one atomic unit of work for one account: finding upserts and deletions, outbox events,
// coverage updates and audit entries are written in a single transaction or not at all. It is the
// transactional outbox: an event is durable exactly when the change it describes is.
type Changes struct {
	// Account owns every row below; a row of another account fails the whole call with ErrForeign.
	Account string
	Upsert  []model.Finding
	// Observed are findings seen again at ObservedAt: only their lastObservedAt moves, no document
	// is rewritten. Upserts are written first, so an upserted finding that is also observed ends at
	// ObservedAt. (A resource all of whose open findings were seen again is observed with Observe.)
	Observed   []string
	ObservedAt time.Time
	// ObservedBefore, when set, limits observing to findings last observed at or before it: the
	// server moves lastObservedAt at a granularity, so an unchanged resubmission rewrites no row.
	ObservedBefore time.Time
	// KeptPackages are IDs among Upsert whose package rows (name, version, ecosystem, layer) the
	// store already holds as given (findings.Result.KeptPackages): they are neither read nor
	// rewritten. A caller that cannot vouch for that leaves it empty.
	KeptPackages []string
	Delete       []string // finding IDs
	Events       []model.OutboxEvent
	Coverage     []model.Coverage
	Audit        []AuditEntry
	// RemoveResources are resource IDs marked removed at RemovedAt (those not removed already), in
	// the same transaction as the findings they close.
	RemoveResources []string
	RemovedAt       time.Time
}

func (c *Changes) validate() error {
	if c.Account == "" {
		return fmt.Errorf("%w: changes without an account", ErrInvalid)
	}
	if len(c.RemoveResources) > 0 && c.RemovedAt.IsZero() {
		return fmt.Errorf("%w: resources removed without a time", ErrInvalid)
	}
	foreign := func(what, id, acc string) error {
		if acc != c.Account {
			return fmt.Errorf("%w: %s %q of account %q in changes for %q", ErrForeign, what, id, acc, c.Account)
		}
		return nil
	}
	for i := range c.Upsert {
		f := &c.Upsert[i]
		if f.ID == "" || f.ResourceID == "" {
			return fmt.Errorf("%w: finding needs an ID and a resource", ErrInvalid)
		}
		if _, ok := severityRank[f.Severity]; !ok {
			return fmt.Errorf("%w: finding %s: unknown severity %q", ErrInvalid, f.ID, f.Severity)
		}
		if err := foreign("finding", f.ID, f.Account); err != nil {
			return err
		}
	}
	if len(c.Observed) > 0 && c.ObservedAt.IsZero() {
		return fmt.Errorf("%w: observed findings without a time", ErrInvalid)
	}
	for _, e := range c.Events {
		if e.ID == "" || e.Type == "" {
			return fmt.Errorf("%w: event needs an ID and a type", ErrInvalid)
		}
		if len(e.Data) > 0 && !json.Valid(e.Data) {
			return fmt.Errorf("%w: event %s data is not JSON", ErrInvalid, e.ID)
		}
		if err := foreign("event", e.ID, e.Account); err != nil {
			return err
		}
	}
	for _, cv := range c.Coverage {
		if err := foreign("coverage", cv.ResourceID, cv.Account); err != nil {
			return err
		}
	}
	for _, a := range c.Audit {
		if err := foreign("audit entry", a.Action, a.Account); err != nil {
			return err
		}
	}
	return nil
}

// ApplyChanges writes c atomically.
func (s *Store) ApplyChanges(ctx context.Context, c Changes) error {
	if err := c.validate(); err != nil {
		return err
	}
	// Documents are encoded before the transaction: on SQLite every other writer waits for it.
	ups, err := prepareUpserts(c.Upsert)
	if err != nil {
		return err
	}
	return s.inTx(ctx, func(tx *sql.Tx) error {
		if err := s.upsertFindings(ctx, tx, c.Account, ups, c.KeptPackages); err != nil {
			return err
		}
		at, before := micros(c.ObservedAt), micros(c.ObservedAt)
		if !c.ObservedBefore.IsZero() {
			before = micros(c.ObservedBefore)
		}
		for chunk := range slices.Chunk(c.Observed, 500) {
			args := append([]any{at, c.Account, before}, anys(chunk)...)
			if _, err := s.exec(ctx, tx, `UPDATE findings SET last_observed = ? WHERE account = ? AND last_observed <= ? AND id IN (`+placeholders(len(chunk))+`)`, args...); err != nil {
				return fmt.Errorf("store: observe findings: %w", err)
			}
		}
		for chunk := range slices.Chunk(c.Delete, 500) {
			args := append([]any{c.Account}, anys(chunk)...)
			if _, err := s.exec(ctx, tx, `DELETE FROM findings WHERE account = ? AND id IN (`+placeholders(len(chunk))+`)`, args...); err != nil {
				return fmt.Errorf("store: delete findings: %w", err)
			}
		}
		if err := s.appendEvents(ctx, tx, c.Events); err != nil {
			return err
		}
		for _, cv := range c.Coverage {
			if err := s.putCoverage(ctx, tx, cv); err != nil {
				return err
			}
		}
		for _, a := range c.Audit {
			if err := s.appendAudit(ctx, tx, a); err != nil {
				return err
			}
		}
		for _, id := range c.RemoveResources {
			if _, err := s.exec(ctx, tx, `UPDATE resources SET removed_at = ? WHERE account = ? AND id = ? AND removed_at IS NULL`,
				micros(c.RemovedAt), c.Account, id); err != nil {
				return fmt.Errorf("store: remove resource %s: %w", id, err)
			}
		}
		return nil
	})
}

// Rows per bulk write: PostgreSQL takes a chunk as one array per column.
const writeChunk = 1000

var (
	findingCols = []string{"account", "id", "resource_id", "resource_type", "type", "vulnerability_id", "severity",
		"severity_rank", "status", "fix_available", "exploit_available", "epss", "risk_score", "first_observed", "last_observed",
		"updated_at", "image_repository"}
	findingTypes = []colType{colText, colText, colText, colText, colText, colText, colText,
		colInt, colText, colText, colText, colFloat, colFloat, colInt, colInt,
		colInt, colText}
)

// findingUpsert leaves the columns a finding's stable ID is derived from (its resource, and so its
// resource type; its type; its vulnerability) as they are: setting them would rewrite their index
// entries on every update for nothing.
const findingUpsert = `ON CONFLICT (account, id) DO UPDATE SET severity = excluded.severity,
	severity_rank = excluded.severity_rank, status = excluded.status, fix_available = excluded.fix_available,
	exploit_available = excluded.exploit_available, epss = excluded.epss, risk_score = excluded.risk_score,
	first_observed = excluded.first_observed, last_observed = excluded.last_observed,
	updated_at = excluded.updated_at, image_repository = excluded.image_repository`

// pkgKey is one finding_packages row of a finding.
type pkgKey struct{ name, version, ecosystem, layer string }

func comparePkgKeys(a, b pkgKey) int {
	if c := strings.Compare(a.name, b.name); c != 0 {
		return c
	}
	if c := strings.Compare(a.version, b.version); c != 0 {
		return c
	}
	if c := strings.Compare(a.ecosystem, b.ecosystem); c != 0 {
		return c
	}
	return strings.Compare(a.layer, b.layer)
}

// upsert is a finding to write with its encoded document.
type upsert struct {
	f   *model.Finding
	doc string
}

// prepareUpserts encodes the findings' documents, keeping the last version of a finding given
// twice (a statement may not touch a row twice on PostgreSQL).
func prepareUpserts(fs []model.Finding) ([]upsert, error) {
	last := make(map[string]int, len(fs))
	for i := range fs {
		last[fs[i].ID] = i
	}
	out := make([]upsert, 0, len(last))
	for i := range fs {
		if last[fs[i].ID] != i {
			continue
		}
		data, err := json.Marshal(&fs[i])
		if err != nil {
			return nil, fmt.Errorf("store: finding %s: %w", fs[i].ID, err)
		}
		out = append(out, upsert{f: &fs[i], doc: string(data)})
	}
	return out, nil
}

// upsertFindings writes findings with bulk statements: a resource's first inventory or a feed delta
// writes hundreds at once. The findings' lastObservedAt goes to its column; reads take it from
// there (ObservedAt moves it without rewriting the document). A finding's package rows are
// rewritten only when its packages changed: a re-rated or re-observed finding keeps them.
func (s *Store) upsertFindings(ctx context.Context, tx *sql.Tx, account string, fs []upsert, kept []string) error {
	if len(fs) == 0 {
		return nil
	}
	keptSet := make(map[string]bool, len(kept))
	for _, id := range kept {
		keptSet[id] = true
	}
	// Findings carry their resource's image repository (a filter column): one read per 500
	// resources (a feed delta's batch spans hundreds).
	repos := map[string]string{}
	var resIDs []string
	for i := range fs {
		if _, ok := repos[fs[i].f.ResourceID]; !ok {
			repos[fs[i].f.ResourceID] = ""
			resIDs = append(resIDs, fs[i].f.ResourceID)
		}
	}
	for chunk := range slices.Chunk(resIDs, 500) {
		cond, args := s.inList("id", chunk)
		rows, err := s.query(ctx, tx, `SELECT id, image_repository FROM resources WHERE account = ? AND `+cond, append([]any{account}, args...)...)
		if err != nil {
			return fmt.Errorf("store: upsert findings: %w", err)
		}
		for rows.Next() {
			var id, repo string
			if err := rows.Scan(&id, &repo); err != nil {
				rows.Close()
				return fmt.Errorf("store: upsert findings: %w", err)
			}
			repos[id] = repo
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: upsert findings: %w", err)
		}
	}
	var (
		fb = newBulk("findings", findingCols, findingTypes, findingUpsert)
		db = newBulk("finding_data", []string{"account", "id", "data"}, []colType{colText, colText, colText},
			`ON CONFLICT (account, id) DO UPDATE SET data = excluded.data`)
		pb = newBulk("finding_packages", []string{"account", "finding_id", "name", "version", "ecosystem", "layer"},
			[]colType{colText, colText, colText, colText, colText, colText}, "")
	)
	for chunk := range slices.Chunk(fs, writeChunk) {
		ids := make([]string, 0, len(chunk))
		for _, u := range chunk {
			f := u.f
			epss := 0.0
			if f.EPSS != nil {
				epss = f.EPSS.Score
			}
			fb.add(f.Account, f.ID, f.ResourceID, f.ResourceType, f.Type, f.VulnerabilityID, f.Severity,
				int64(severityRank[f.Severity]), f.Status, f.FixAvailable, f.ExploitAvailable, epss, f.RiskScore.Score,
				micros(f.FirstObservedAt), micros(f.LastObservedAt), micros(f.UpdatedAt), repos[f.ResourceID])
			db.add(f.Account, f.ID, u.doc)
			if !keptSet[f.ID] {
				ids = append(ids, f.ID)
			}
		}
		var err error
		if s.dialect == SQLite {
			err = s.sqliteFindingRows(ctx, tx, fb)
		} else {
			err = fb.flush(ctx, s, tx)
		}
		if err != nil {
			return fmt.Errorf("store: upsert findings: %w", err)
		}
		if err := db.flush(ctx, s, tx); err != nil {
			return fmt.Errorf("store: upsert findings: %w", err)
		}
		if len(ids) == 0 {
			continue
		}
		// The package rows the findings have now, to rewrite only those that differ.
		stored := map[string][]pkgKey{}
		cond, args := s.inList("finding_id", ids)
		rows, err := s.query(ctx, tx, `SELECT finding_id, name, version, ecosystem, layer FROM finding_packages WHERE account = ? AND `+cond,
			append([]any{account}, args...)...)
		if err != nil {
			return fmt.Errorf("store: upsert findings: packages: %w", err)
		}
		for rows.Next() {
			var (
				id string
				k  pkgKey
			)
			if err := rows.Scan(&id, &k.name, &k.version, &k.ecosystem, &k.layer); err != nil {
				rows.Close()
				return fmt.Errorf("store: upsert findings: packages: %w", err)
			}
			stored[id] = append(stored[id], k)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("store: upsert findings: packages: %w", err)
		}
		var stale []string
		for _, u := range chunk {
			f := u.f
			if keptSet[f.ID] {
				continue
			}
			want := make([]pkgKey, len(f.Packages))
			for j, p := range f.Packages {
				want[j] = pkgKey{p.Name, p.Version, p.Ecosystem, p.LayerDigest}
			}
			have := stored[f.ID]
			slices.SortFunc(want, comparePkgKeys)
			slices.SortFunc(have, comparePkgKeys)
			if slices.Equal(want, have) {
				continue
			}
			if len(have) > 0 {
				stale = append(stale, f.ID)
			}
			for _, k := range want {
				pb.add(f.Account, f.ID, k.name, k.version, k.ecosystem, k.layer)
			}
		}
		for del := range slices.Chunk(stale, 500) {
			cond, args := s.inList("finding_id", del)
			if _, err := s.exec(ctx, tx, `DELETE FROM finding_packages WHERE account = ? AND `+cond, append([]any{account}, args...)...); err != nil {
				return fmt.Errorf("store: upsert findings: packages: %w", err)
			}
		}
		if err := pb.flush(ctx, s, tx); err != nil {
			return fmt.Errorf("store: upsert findings: packages: %w", err)
		}
	}
	return nil
}

// sqliteFindingRows writes a findings bulk (fb's rows) on SQLite: a new finding is inserted, an
// existing one updated in the columns whose value changed only, and one whose columns are all as
// stored is not touched. SQLite rewrites the entries of every index holding a column an UPDATE
// assigns, changed or not (SET a = a on an indexed column cost 13 times an unindexed assignment),
// and the sort indexes all end with severity, status, fix and exploit: an upsert assigning every
// column rewrote 8 indexes of a finding whose update and observation times alone moved.
// (PostgreSQL compares the values itself: an update that changes no indexed column is HOT.)
func (s *Store) sqliteFindingRows(ctx context.Context, tx *sql.Tx, fb *bulkInsert) error {
	const (
		idCol    = 1
		firstSet = 6 // findingCols from here on are what an update may change
	)
	w := len(findingCols)
	n := fb.rows()
	defer func() { fb.args = fb.args[:0] }()
	if n == 0 {
		return nil
	}
	account := fb.args[0].(string)
	// New findings (a new host's hundreds) are inserted at once; the others are collected.
	ins, err := tx.PrepareContext(ctx, `INSERT INTO findings (`+strings.Join(findingCols, ", ")+`) VALUES (`+
		placeholders(w)+`) ON CONFLICT (account, id) DO NOTHING`)
	if err != nil {
		return err
	}
	defer ins.Close()
	existing := map[string][]any{} // by ID: the row to write
	var ids []string
	for r := 0; r < n; r++ {
		row := fb.args[r*w : (r+1)*w]
		res, err := ins.ExecContext(ctx, row...)
		if err != nil {
			return err
		}
		if k, err := res.RowsAffected(); err != nil {
			return err
		} else if k == 0 {
			id := row[idCol].(string)
			existing[id] = row
			ids = append(ids, id)
		}
	}
	updates := map[uint32]*sql.Stmt{} // by the set of changed columns
	defer func() {
		for _, st := range updates {
			st.Close()
		}
	}()
	for chunk := range slices.Chunk(ids, 500) {
		rows, err := s.query(ctx, tx, `SELECT id, `+strings.Join(findingCols[firstSet:], ", ")+` FROM findings WHERE account = ? AND id IN (`+
			placeholders(len(chunk))+`)`, append([]any{account}, anys(chunk)...)...)
		if err != nil {
			return err
		}
		type change struct {
			id   string
			mask uint32
			args []any
		}
		var changes []change
		for rows.Next() {
			var id string
			have := make([]any, w-firstSet)
			ptrs := make([]any, len(have)+1)
			ptrs[0] = &id
			for c := range have {
				switch findingTypes[firstSet+c] {
				case colText:
					have[c] = new(string)
				case colInt:
					have[c] = new(int64)
				case colFloat:
					have[c] = new(float64)
				}
				ptrs[c+1] = have[c]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return err
			}
			row := existing[id]
			ch := change{id: id}
			for c := firstSet; c < w; c++ {
				var same bool
				switch v := have[c-firstSet].(type) {
				case *string:
					same = *v == row[c].(string)
				case *int64:
					same = *v == row[c].(int64)
				case *float64:
					same = *v == row[c].(float64)
				}
				if !same {
					ch.mask |= 1 << c
					ch.args = append(ch.args, row[c])
				}
			}
			if ch.mask != 0 {
				changes = append(changes, ch)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, ch := range changes {
			st := updates[ch.mask]
			if st == nil {
				var set []string
				for c := firstSet; c < w; c++ {
					if ch.mask&(1<<c) != 0 {
						set = append(set, findingCols[c]+" = ?")
					}
				}
				if st, err = tx.PrepareContext(ctx, `UPDATE findings SET `+strings.Join(set, ", ")+` WHERE account = ? AND id = ?`); err != nil {
					return err
				}
				updates[ch.mask] = st
			}
			if _, err := st.ExecContext(ctx, append(ch.args, account, ch.id)...); err != nil {
				return err
			}
		}
	}
	return nil
}

// appendEvents adds validated events to the outbox with bulk inserts (a first inventory emits
// hundreds).
func (s *Store) appendEvents(ctx context.Context, tx *sql.Tx, events []model.OutboxEvent) error {
	if len(events) == 0 {
		return nil
	}
	now := micros(s.now())
	b := newBulk("outbox", []string{"event_id", "type", "account", "subject", "event_time", "data", "state", "next_attempt_at"},
		[]colType{colText, colText, colText, colText, colInt, colText, colText, colInt}, "")
	for chunk := range slices.Chunk(events, writeChunk) {
		for _, e := range chunk {
			at := e.Time
			if at.IsZero() {
				at = s.now()
			}
			data := "null"
			if len(e.Data) > 0 {
				data = string(e.Data) // checked by Changes.validate
			}
			b.add(e.ID, e.Type, e.Account, e.Subject, micros(at), data, "pending", now)
		}
		if err := b.flush(ctx, s, tx); err != nil {
			return fmt.Errorf("store: append events: %w", err)
		}
	}
	return nil
}
