package ipam

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
)

// digest hashes a VM's name; attempt > 0 rehashes it after a collision, so
// that the result stays a pure function of the name and of what is taken.
func digest(vm string, attempt int) [sha256.Size]byte {
	if attempt == 0 {
		return sha256.Sum256([]byte(vm))
	}
	return sha256.Sum256([]byte(vm + "#" + strconv.Itoa(attempt)))
}

// maxAttempts bounds the rehashing; with 2^40 MACs and 2^48 tap names a
// real fleet never gets near it.
const maxAttempts = 64

// MAC derives a VM's MAC from its name: unicast, locally administered
// (02 in the first octet's low bits), and not one that taken reports.
func MAC(vm string, taken func(string) bool) (string, error) {
	for i := range maxAttempts {
		d := digest(vm, i)
		mac := net.HardwareAddr{d[0]&^0x01 | 0x02, d[1], d[2], d[3], d[4], d[5]}.String()
		if !taken(mac) {
			return mac, nil
		}
	}
	return "", fmt.Errorf("vm %q: no free MAC after %d attempts", vm, maxAttempts)
}

// TapPrefix starts every tap name, so that an operator tells the plugin's
// taps apart at a glance.
const TapPrefix = "vt"

// TapName derives a VM's tap name: TapPrefix and 12 hex digits, 14
// characters, under the kernel's 15-character limit.
func TapName(vm string, taken func(string) bool) (string, error) {
	for i := range maxAttempts {
		d := digest(vm, i)
		name := TapPrefix + hex.EncodeToString(d[26:32])
		if !taken(name) {
			return name, nil
		}
	}
	return "", fmt.Errorf("vm %q: no free tap name after %d attempts", vm, maxAttempts)
}
