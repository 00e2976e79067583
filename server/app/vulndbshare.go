package app

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vigil-sec/vigil/server/store"
	"github.com/vigil-sec/vigil/vulndb"
)

// Server processes on several hosts each keep their own vulnerability database file. The one the
// fleet uses travels through the store: whichever process brings its file forward (the feed update
// job, or a file imported by hand) publishes it as a bundle, and the others adopt that bundle in
// place of their file. A file's lineage (vulndb.DB.Lineage) says whether two files are one
// database at two versions; the published lineage is the fleet's, and a process whose file is of
// another lineage (its own first start, say) adopts the published one. Processes sharing one file
// on one host work as before: their file is the published one.

// How a sync treats a file ahead of the published one.
type shareMode int

const (
	adoptOnly      shareMode = iota // feed passes and submissions: a publication (an export) must not lengthen them
	adoptOrPublish                  // start, feed update jobs, the watcher
)

// syncVulnDB brings this process's vulnerability database and the published one together
// (PostgreSQL only; one SQLite process has nothing to share with): it adopts the published one
// when its file is behind or of another lineage, and (adoptOrPublish) publishes its file when it
// is ahead of the published one or none is published. newLineage reports an adopted file of
// another lineage than the process had (the caller's engine must then start over).
func (s *Server) syncVulnDB(ctx context.Context, mode shareMode) (newLineage bool, err error) {
	if s.Store.Dialect() != store.Postgres {
		return false, nil
	}
	s.shareMu.Lock()
	defer s.shareMu.Unlock()
	for range 2 {
		pub, ok, err := s.Store.PublishedVulnDB(ctx)
		if err != nil {
			return false, err
		}
		lineage, v, err := s.VulnDB.Lineage(ctx)
		if err != nil {
			return false, err
		}
		switch {
		case !ok && v == 0:
			return false, nil // nothing imported anywhere yet
		case ok && pub.Lineage == lineage && int64(v) == pub.Version:
			return false, nil
		case !ok || pub.Lineage == lineage && int64(v) > pub.Version:
			if mode == adoptOnly {
				return false, nil
			}
			published, err := s.publishVulnDB(ctx, lineage, v)
			if err != nil || published {
				return false, err
			}
			// Another process published first (a newer version, or the fleet's first lineage):
			// look again, and adopt it.
			continue
		}
		if pub.Lineage != lineage && v > 0 {
			s.log.Warn("this process's vulnerability database is not the fleet's (built apart); the published one replaces it",
				"file", s.VulnDB.Path(), "version", v, "lineage", lineage, "published", pub.Version, "publishedLineage", pub.Lineage)
		}
		if err := s.adoptVulnDB(ctx, pub); err != nil {
			return false, err
		}
		return pub.Lineage != lineage, nil
	}
	return false, fmt.Errorf("publishing the vulnerability database: other processes keep publishing theirs")
}

// publishVulnDB exports this process's database and stores it as the fleet's.
func (s *Server) publishVulnDB(ctx context.Context, lineage string, v vulndb.Version) (bool, error) {
	dir := filepath.Dir(s.VulnDB.Path())
	tmp, err := os.CreateTemp(dir, ".vulndb-publish-*")
	if err != nil {
		return false, fmt.Errorf("publishing the vulnerability database: %w", err)
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	m, err := s.VulnDB.Export(ctx, tmp.Name())
	if err != nil {
		return false, fmt.Errorf("publishing the vulnerability database: %w", err)
	}
	if m.Version != v {
		return false, nil // an import moved it meanwhile: the next sync publishes that one
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return false, fmt.Errorf("publishing the vulnerability database: %w", err)
	}
	defer f.Close()
	ok, err := s.Store.PublishVulnDB(ctx, store.VulnDBBundle{Lineage: lineage, Version: int64(v), Publisher: s.worker}, bufio.NewReader(f))
	if err != nil {
		return false, err
	}
	if ok {
		s.log.Info("vulnerability database published for the other server processes", "version", v, "lineage", lineage)
	}
	return ok, nil
}

// adoptVulnDB replaces this process's database file with the published bundle. The bundle is
// checked twice: against its published size and SHA-256 while it is fetched, and by the import
// (manifest, database checksum, SQLite integrity) before the file is swapped.
func (s *Server) adoptVulnDB(ctx context.Context, pub store.VulnDBBundle) error {
	dir := filepath.Dir(s.VulnDB.Path())
	tmp, err := os.CreateTemp(dir, ".vulndb-adopt-*")
	if err != nil {
		return fmt.Errorf("adopting the published vulnerability database: %w", err)
	}
	defer os.Remove(tmp.Name())
	w := bufio.NewWriterSize(tmp, 1<<20)
	b, err := s.Store.FetchVulnDB(ctx, w)
	if err == nil {
		err = w.Flush()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("adopting the published vulnerability database: %w", err)
	}
	m, err := s.VulnDB.Import(ctx, tmp.Name())
	if errors.Is(err, vulndb.ErrInUse) {
		return fmt.Errorf("adopting the published vulnerability database (version %d from %s): %w; "+
			"when the server processes span hosts, give each its own vulnerability database file", b.Version, b.Publisher, err)
	}
	if err != nil {
		return fmt.Errorf("adopting the published vulnerability database (version %d from %s): %w", b.Version, b.Publisher, err)
	}
	lineage, v, err := s.VulnDB.Lineage(ctx)
	if err != nil {
		return err
	}
	if lineage != b.Lineage || v != m.Version || int64(v) != b.Version {
		return fmt.Errorf("adopting the published vulnerability database: it was published as version %d of %s, and reads as version %d of %s",
			b.Version, b.Lineage, v, lineage)
	}
	s.log.Info("adopted the vulnerability database another server process published", "version", v, "lineage", lineage, "publisher", b.Publisher)
	return nil
}

// followPublished syncs with the published vulnerability database, and when that replaced this
// process's file with one of another lineage, makes the engine start over: its version numbers
// and per-package results belong to the old file. The next feed pass evaluates every stored
// resource afresh and writes only what differs.
func (s *Server) followPublished(ctx context.Context, mode shareMode) error {
	newLineage, err := s.syncVulnDB(ctx, mode)
	if err != nil || !newLineage {
		return err
	}
	v, err := s.VulnDB.Version(ctx)
	if err != nil {
		return err
	}
	s.submitMu.Lock()
	s.forgetFleet()
	s.dbVersion = v
	s.submitMu.Unlock()
	return nil
}
