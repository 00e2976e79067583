package rpm

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	_ "modernc.org/sqlite" // pure-Go driver "sqlite"
)

// readSQLite copies the rpmdb.sqlite at name (and its -wal, when it has content, so that committed
// but not checkpointed transactions are seen) into a private temporary directory, because SQLite
// needs a real file, and calls fn with each header blob of its Packages table. Copies are bounded by
// limit bytes each.
func readSQLite(ctx context.Context, fsys fs.FS, name string, limit int64, fn func(blob []byte) error) error {
	tmp, err := os.MkdirTemp("", "vigil-rpmdb-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	dbPath := filepath.Join(tmp, "rpmdb.sqlite")
	if err := copyLimited(fsys, name, dbPath, limit); err != nil {
		return err
	}
	if err := copyLimited(fsys, name+"-wal", dbPath+"-wal", limit); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}

	db, err := sql.Open("sqlite", "file:"+dbPath+"?_pragma=busy_timeout(1000)")
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	rows, err := db.QueryContext(ctx, "SELECT blob FROM Packages")
	if err != nil {
		return fmt.Errorf("not an rpm sqlite database: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var blob []byte
		if err := rows.Scan(&blob); err != nil {
			return err
		}
		if err := fn(blob); err != nil {
			return err
		}
	}
	return rows.Err()
}

// copyLimited copies name from fsys to the local file dst, failing past limit bytes. An empty source
// is not copied (an empty -wal means nothing to replay).
func copyLimited(fsys fs.FS, name, dst string, limit int64) error {
	src, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer src.Close()
	if fi, err := src.Stat(); err == nil && fi.Size() == 0 && strings.HasSuffix(name, "-wal") {
		return nil
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, io.LimitReader(src, limit+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copying /%s: %w", name, err)
	}
	if n > limit {
		return fmt.Errorf("/%s: more than %d bytes", name, limit)
	}
	return nil
}
