package api

import (
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

// do sends a request and decodes a JSON answer into out when out is not nil.
func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.Addr+path, nil)
	if err != nil {
		return fmt.Errorf("vertigo api: %w", err)
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
		return fmt.Errorf("vertigo api: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		return statusError(resp)
	}
	if out == nil {
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("vertigo api: decoding %s %s: %w", method, path, err)
	}
	return nil
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
