package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	goio "io"

	"github.com/segsync/segsync/internal/store"
)

// runRuns inspects and cancels runs through the REST API.
func runRuns(ctx context.Context, io IO, args []string) error {
	return runSubcommand(ctx, io, "runs", args, map[string]subcommand{
		"show":       {"ID [--json] [--wait]", runsShow},
		"rejections": {"ID [--csv]", runsRejections},
		"cancel":     {"ID", runsCancel},
	})
}

func runsShow(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("runs show", flag.ContinueOnError)
	asJSON := fs.Bool("json", false, "print the run as JSON")
	wait := fs.Bool("wait", false, "wait for the run to end")
	c, id, err := idCommand(fs, args, io, "run")
	if err != nil {
		return err
	}
	var r store.Run
	if *wait {
		r, err = waitForRun(ctx, io, c, id)
	} else {
		err = c.getJSON(ctx, pathf("/api/v1/runs/%s", id), nil, &r)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return printJSON(io.Stdout, r)
	}
	fmt.Fprintf(io.Stdout, "export %d, trigger %s, progress %d/%d\n", r.ExportID, r.Trigger, r.Progress.Done, r.Progress.Total)
	printRunSummary(io, r, 0)
	return nil
}

func runsRejections(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("runs rejections", flag.ContinueOnError)
	asCSV := fs.Bool("csv", false, "print CSV (email, customer_id, reason, kind)")
	c, id, err := idCommand(fs, args, io, "run")
	if err != nil {
		return err
	}
	path := pathf("/api/v1/runs/%s/rejections", id)
	if *asCSV {
		resp, err := c.send(ctx, request{method: "GET", path: path, accept: "text/csv"})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = goio.Copy(io.Stdout, resp.Body)
		return err
	}
	var res struct {
		Rejections []store.Rejection `json:"rejections"`
	}
	if err := c.getJSON(ctx, path, nil, &res); err != nil {
		return err
	}
	if len(res.Rejections) == 0 {
		fmt.Fprintln(io.Stdout, "no rejections")
		return nil
	}
	for _, rj := range res.Rejections {
		fmt.Fprintf(io.Stdout, "%s\t%s\t%s\t%s\n", rj.Email, rj.CustomerID, rj.Kind, rj.Reason)
	}
	return nil
}

func runsCancel(ctx context.Context, io IO, args []string) error {
	fs := flag.NewFlagSet("runs cancel", flag.ContinueOnError)
	c, id, err := idCommand(fs, args, io, "run")
	if err != nil {
		return err
	}
	var r json.RawMessage
	if err := c.sendJSON(ctx, "POST", pathf("/api/v1/runs/%s/cancel", id), nil, &r); err != nil {
		return err
	}
	return printJSON(io.Stdout, r)
}
