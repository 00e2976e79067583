package rpm

import (
	"context"
	"fmt"
	"io"
	"io/fs"

	"github.com/vigil-sec/vigil/inventory/rpm/sqlitedb"
	"github.com/vigil-sec/vigil/source/fsx"
)

// readSQLite reads the Packages table (hnum INTEGER PRIMARY KEY, blob BLOB) of the rpmdb.sqlite at
// name, with the committed frames of its -wal beside it (rpm leaves recent transactions there), and
// calls fn with each header blob. Files over limit bytes are refused.
func readSQLite(ctx context.Context, fsys fs.FS, name string, limit int64, fn func(blob []byte) error) error {
	ra, size, release, err := openLimited(fsys, name, limit)
	if err != nil {
		return err
	}
	defer release()
	var walR io.ReaderAt
	var walSize int64
	if wr, ws, wrelease, err := openLimited(fsys, name+"-wal", limit); err == nil {
		defer wrelease()
		if ws >= 32 { // shorter than a WAL header: nothing to replay
			walR, walSize = wr, ws
		}
	}
	db, err := sqlitedb.Open(ra, size, walR, walSize)
	if err != nil {
		return fmt.Errorf("not an rpm sqlite database: %w", err)
	}
	return db.Rows("Packages", func(cols []any) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if len(cols) < 2 {
			return fmt.Errorf("Packages row of %d columns", len(cols))
		}
		blob, ok := cols[1].([]byte)
		if !ok {
			return fmt.Errorf("Packages row without a header blob")
		}
		return fn(blob)
	})
}

// openLimited opens name for random access, refusing files over limit bytes.
func openLimited(fsys fs.FS, name string, limit int64) (io.ReaderAt, int64, func(), error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, 0, nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, nil, err
	}
	if fi.Size() > limit {
		f.Close()
		return nil, 0, nil, fmt.Errorf("/%s: more than %d bytes", name, limit)
	}
	ra, release, err := fsx.ReaderAt(f, fi.Size())
	if err != nil {
		f.Close()
		return nil, 0, nil, fmt.Errorf("/%s: %w", name, err)
	}
	return ra, fi.Size(), func() { release(); f.Close() }, nil
}
