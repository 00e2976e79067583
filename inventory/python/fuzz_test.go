package python

import (
	"bytes"
	"os"
	"testing"
)

func FuzzMetadata(f *testing.F) {
	f.Add([]byte(requestsPKGINFO))
	f.Add([]byte("Name: x\n License continued\nVersion: 1\r\n\r\nbody"))
	f.Fuzz(func(t *testing.T, data []byte) { _, _ = ParseMetadata(bytes.NewReader(data)) })
}

func FuzzRequirements(f *testing.F) {
	for _, name := range []string{"testdata/requirements.txt", "testdata/requirements/base.txt"} {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("a==1 \\\n --hash=sha256:00\\"))
	f.Fuzz(func(t *testing.T, data []byte) { _, _ = ParseRequirements(data) })
}

func FuzzLockfiles(f *testing.F) {
	for _, name := range []string{"poetry-1.lock", "poetry-2.lock", "Pipfile.lock", "uv.lock"} {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = ParsePoetryLock(data)
		_, _ = ParsePipfileLock(data)
		_, _ = ParseUVLock(data)
	})
}
