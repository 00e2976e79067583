//go:build scanonly

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// A scan-only build has no API client: the db commands work on the local file only.
type apiClient struct{ server string }

func (c *apiClient) registerRemote(*cobra.Command) {}

var errNoRemote = errors.New("this scan-only build has no server client; use the full vigil binary")

func remoteUpdate(*cobra.Command, *apiClient, bool, bool) error { return errNoRemote }

func remoteStatus(*cobra.Command, *apiClient) error { return errNoRemote }
