package sdk

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"syscall"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
)

// LaunchOptions says how to start a plugin binary.
type LaunchOptions struct {
	Path string
	Args []string
	// SHA256, when set, pins the binary: go-plugin refuses to start a file
	// whose hash differs (hex, 64 characters).
	SHA256 string
	// Dir is the plugin's working directory: the host sets it to its
	// config file's directory, so that relative paths in a plugin's config
	// mean the same as relative paths in the host's.
	Dir string
	// Env is added to the host's environment for the plugin ("KEY=value"),
	// and wins over it.
	Env []string
	// Logger receives the plugin's logs, re-emitted under this logger.
	Logger hclog.Logger
}

// Launched is a running plugin process and the typed client to it.
type Launched struct {
	Process *goplugin.Client
	*Client
}

// Kill stops the plugin process (gracefully, then forcibly).
func (l *Launched) Kill() { l.Process.Kill() }

// Exited reports whether the plugin process has exited.
func (l *Launched) Exited() bool { return l.Process.Exited() }

// Launch starts a plugin binary with AutoMTLS and gRPC only, and connects to
// it. The caller checks its identity with Client.Identify.
func Launch(opts LaunchOptions) (*Launched, error) {
	logger := opts.Logger
	if logger == nil {
		logger = hclog.NewNullLogger()
	}
	var secure *goplugin.SecureConfig
	if opts.SHA256 != "" {
		sum, err := hex.DecodeString(opts.SHA256)
		if err != nil || len(sum) != sha256.Size {
			return nil, fmt.Errorf("sha256 pin for %s: want 64 hex characters, got %q", opts.Path, opts.SHA256)
		}
		secure = &goplugin.SecureConfig{Checksum: sum, Hash: sha256.New()}
	}
	cmd := exec.Command(opts.Path, opts.Args...)
	cmd.Dir = opts.Dir
	cmd.Env = append(os.Environ(), opts.Env...)
	// A process group of its own: a Ctrl-C at the host's terminal reaches
	// the host, which then stops its plugins in order, instead of killing
	// plugins under a host that is still using them.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	pc := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig:  Handshake,
		Plugins:          PluginSet(nil),
		Cmd:              cmd,
		SecureConfig:     secure,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		// The environment is cmd.Env, where Env follows the host's.
		SkipHostEnv: true,
		Logger:      logger,
		// Whatever the plugin prints to stdout or stderr after the
		// handshake (fmt, the log package) is kept, as log lines.
		SyncStdout: logger.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true}),
		SyncStderr: logger.StandardWriter(&hclog.StandardLoggerOptions{InferLevels: true}),
		GRPCDialOptions: []grpc.DialOption{
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)),
			grpc.WithInitialWindowSize(windowBytes), grpc.WithInitialConnWindowSize(windowBytes),
			grpc.WithWriteBufferSize(ioBufferBytes), grpc.WithReadBufferSize(ioBufferBytes),
		},
	})
	rpc, err := pc.Client()
	if err != nil {
		pc.Kill()
		return nil, fmt.Errorf("starting plugin %s: %w", opts.Path, err)
	}
	raw, err := rpc.Dispense(pluginSetName)
	if err != nil {
		pc.Kill()
		return nil, fmt.Errorf("connecting to plugin %s: %w", opts.Path, err)
	}
	return &Launched{Process: pc, Client: raw.(*Client)}, nil
}
