//go:build !scanonly

package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/vigil-sec/vigil/server/app"
)

// registerRemote adds --server and the client flags to a db command. Unlike the read commands, --server does not
// default to $VIGIL_SERVER: the db commands work on the local file unless asked, by flag, to go to a server.
func (c *apiClient) registerRemote(cmd *cobra.Command) {
	c.register(cmd)
	f := cmd.Flags().Lookup("server")
	f.DefValue, f.Usage = "", "act on this Vigil server's database instead of the local file"
	c.server = ""
}

// jobPoll is how often --wait asks for the job's state.
var jobPoll = time.Second

func remoteUpdate(cmd *cobra.Command, c *apiClient, force, wait bool) error {
	var q app.FeedUpdateQueued
	if err := c.do(http.MethodPost, "/v1/vulndb/update", nil, app.FeedUpdateRequest{Force: force}, &q); err != nil {
		return err
	}
	w := cmd.ErrOrStderr()
	if q.Created {
		fmt.Fprintf(w, "feed update queued as job %d\n", q.JobID)
	} else {
		fmt.Fprintf(w, "a feed update is already waiting or running: job %d\n", q.JobID)
	}
	fmt.Fprintln(cmd.OutOrStdout(), q.JobID)
	if !wait {
		return nil
	}
	return waitJob(cmd, c, q.JobID)
}

// waitJob follows a job until it is done or dead, reporting each state change and failed attempt.
func waitJob(cmd *cobra.Command, c *apiClient, id int64) error {
	w := cmd.ErrOrStderr()
	last := ""
	for {
		var j app.JobView
		if err := c.get(fmt.Sprintf("/v1/jobs/%d", id), nil, &j); err != nil {
			return err
		}
		line := fmt.Sprintf("job %d: %s (attempt %d of %d)", id, j.State, j.Attempts, j.MaxAttempts)
		switch {
		case j.State == "running" && j.Worker != "":
			line += " on " + j.Worker
		case j.State == "pending" && j.LastError != "":
			line += fmt.Sprintf(": failed: %s; retrying at %s", j.LastError, j.RunAt.Local().Format(time.TimeOnly))
		}
		if line != last {
			fmt.Fprintln(w, line)
			last = line
		}
		switch j.State {
		case "done":
			// The job's success is the answer; the status is shown for information.
			if err := remoteStatus(cmd, c); err != nil && !errors.Is(err, errStale) {
				return err
			}
			return nil
		case "dead":
			return fmt.Errorf("feed update job %d failed: %s", id, j.LastError)
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(jobPoll):
		}
	}
}

func remoteStatus(cmd *cobra.Command, c *apiClient) error {
	var st app.FeedStatus
	if err := c.get("/v1/vulndb/status", nil, &st); err != nil {
		return err
	}
	return printRemoteStatus(cmd.OutOrStdout(), c.server, &st)
}

func printRemoteStatus(w io.Writer, server string, st *app.FeedStatus) error {
	fmt.Fprintf(w, "server %s: database version %d, findings reflect version %d\n", server, st.Version, st.FindingsVersion)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SOURCE\tADVISORIES\tENRICHMENTS\tSKIPPED\tLAST SUCCESS\tAGE\tSTATE")
	for _, s := range st.Sources {
		state := "ok"
		if s.Stale {
			state = "STALE"
		}
		if s.LastError != "" {
			state += " (last error: " + strings.SplitN(s.LastError, "\n", 2)[0] + ")"
		}
		last, age := "never", "-"
		if s.LastSuccess != nil {
			last = s.LastSuccess.Format(time.RFC3339)
		}
		if s.AgeSeconds != nil {
			age = (time.Duration(*s.AgeSeconds) * time.Second).Round(time.Minute).String()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%s\n", s.Name, s.Advisories, s.Enrichments, s.Skipped, last, age, state)
	}
	tw.Flush()
	for _, j := range []*app.JobView{st.LastUpdateJob, st.LastReevaluationJob} {
		if j == nil {
			continue
		}
		fmt.Fprintf(w, "last %s job: %d %s at %s", j.Kind, j.ID, j.State, j.UpdatedAt.Local().Format(time.RFC3339))
		if j.LastError != "" {
			fmt.Fprintf(w, " (error: %s)", j.LastError)
		}
		fmt.Fprintln(w)
	}
	if st.NextScheduledUpdate != nil {
		fmt.Fprintf(w, "next scheduled update: %s\n", st.NextScheduledUpdate.Local().Format(time.RFC3339))
	}
	if p := st.Published; p != nil {
		fmt.Fprintf(w, "shared with the other server processes: version %d, published by %s at %s (%.1f MB)\n",
			p.Version, p.Publisher, p.PublishedAt.Local().Format(time.RFC3339), float64(p.Size)/1e6)
	}
	for _, m := range st.Warnings {
		fmt.Fprintf(w, "warning: %s\n", m)
	}
	if st.Stale {
		return errStale
	}
	return nil
}

var errStale = errors.New("stale vulnerability data")
