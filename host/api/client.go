package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// maxErrorBytes bounds how much of an error answer the client reads.
const maxErrorBytes = 64 << 10

// Client talks to a Server; the CLI uses it. Token may be empty for reads.
// A nil HTTP uses http.DefaultClient (whose proxy settings never apply to
// loopback).
type Client struct {
	Addr  string
	Token string
	HTTP  *http.Client
}

// StatusError is an error answer from the API. It matches ErrNotFound when
// the API answered 404.
type StatusError struct {
	Code    int
	Message string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("vertigo api: %s (HTTP %d)", e.Message, e.Code)
}

func (e *StatusError) Is(target error) bool {
	return target == ErrNotFound && e.Code == http.StatusNotFound
}

// Status fetches the fleet's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var st Status
	err := c.do(ctx, http.MethodGet, "/v1/status", &st)
	return st, err
}

// Tick asks the host to run one control-loop pass now and waits for it.
func (c *Client) Tick(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, "/v1/tick", nil)
}

// RestartPlugin asks the host to restart the named plugin.
func (c *Client) RestartPlugin(ctx context.Context, name string) error {
	return c.do(ctx, http.MethodPost, "/v1/plugins/"+url.PathEscape(name)+"/restart", nil)
}

// LoadVM asks the VM's guest to generate load.
func (c *Client) LoadVM(ctx context.Context, name string, req LoadRequest) error {
	return c.doBody(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(name)+"/load", req, nil)
}

// MigrateVM moves a VM, calling progress for every update; it returns once
// the host says the move completed or failed.
func (c *Client) MigrateVM(ctx context.Context, name, to string, progress func(Migration)) error {
	resp, err := c.send(ctx, http.MethodPost, "/v1/vms/"+url.PathEscape(name)+"/migrate", MigrateRequest{To: to})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		// The final {"error": ...} line decodes into Migration.Error.
		var line Migration
		if err := dec.Decode(&line); err == io.EOF {
			return fmt.Errorf("vertigo api: the host ended the migration stream without an outcome")
		} else if err != nil {
			return fmt.Errorf("vertigo api: reading migration progress: %w", err)
		}
		if line.Error != "" {
			return fmt.Errorf("migration of %s failed: %s", name, line.Error)
		}
		progress(line)
		if line.State == "completed" {
			return nil
		}
	}
}

// do sends a request and decodes a JSON answer into out when out is not nil.
func (c *Client) do(ctx context.Context, method, path string, out any) error {
	return c.doBody(ctx, method, path, nil, out)
}

func (c *Client) doBody(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.send(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("vertigo api: decoding %s %s: %w", method, path, err)
	}
	return nil
}

// send sends a request with in (when not nil) as its JSON body, and
// returns a successful response for the caller to read and close.
func (c *Client) send(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, fmt.Errorf("vertigo api: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr+path, body)
	if err != nil {
		return nil, fmt.Errorf("vertigo api: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	hc := c.HTTP
	if hc == nil {
		hc = http.DefaultClient
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("vertigo api: %w", err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		return nil, statusError(resp)
	}
	return resp, nil
}

// statusError reads the API's {"error": ...}, or whatever text answered
// instead (a server that is not Vertigo's).
func statusError(resp *http.Response) error {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	var body errorBody
	msg := strings.TrimSpace(string(raw))
	if json.Unmarshal(raw, &body) == nil && body.Error != "" {
		msg = body.Error
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &StatusError{Code: resp.StatusCode, Message: msg}
}
