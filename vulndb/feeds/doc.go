// Package feeds groups the parsers for the vulnerability feeds that are not OSV, each implementing
// feed.Parser:
//
//	debian  Debian security tracker JSON → model.Advisory per (source package, issue, release)
//	alpine  Alpine secdb JSON            → model.Advisory per (origin package, vulnerability)
//	nvd     NVD CVE API 2.0 pages/feeds  → model.Enrichment (CVSS, CWE, references, configurations); API client
//	kev     CISA KEV catalog             → model.Enrichment{KEV}
//	epss    FIRST EPSS CSV(.gz)          → model.Enrichment{EPSS}
//	fetch   HTTP downloads for the updater (conditional GET, retries, size cap, SHA-256)
//
// Every parser streams its input (bounded memory whatever the file size), accepts gzip input,
// reports single malformed records through feed.Sink.Skip and fails only when the file as a whole is
// unusable (not that format, truncated, over its size cap). The per-feed choices (release naming,
// "never affected" markers, severity mapping) are written in each package's documentation.
package feeds
