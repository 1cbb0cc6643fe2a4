package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

// Uevents of a vCPU hotplug and a virtio-mem block, with the fields the
// guest image's kernel (6.1) sends, as busybox uevent showed them (the cpu
// MODALIAS shortened).
var (
	cpuAddFixture = []byte("add@/devices/system/cpu/cpu1\x00ACTION=add\x00DEVPATH=/devices/system/cpu/cpu1\x00" +
		"SUBSYSTEM=cpu\x00MODALIAS=cpu:type:x86,ven0002fam000Fmod006B:feature:,0000,0002,0003\x00SEQNUM=637\x00")
	memoryAddFixture = []byte("add@/devices/system/memory/memory32\x00ACTION=add\x00DEVPATH=/devices/system/memory/memory32\x00" +
		"SUBSYSTEM=memory\x00SEQNUM=635\x00")
	memoryOnlineFixture = []byte("online@/devices/system/memory/memory32\x00ACTION=online\x00DEVPATH=/devices/system/memory/memory32\x00" +
		"SUBSYSTEM=memory\x00SEQNUM=636\x00")
)

func TestParseUevent(t *testing.T) {
	ev, err := parseUevent(cpuAddFixture)
	require.NoError(t, err)
	require.Equal(t, uevent{Action: "add", DevPath: "/devices/system/cpu/cpu1", Subsystem: "cpu"}, ev)
	require.Equal(t, "cpu1", ev.device())

	ev, err = parseUevent(memoryAddFixture)
	require.NoError(t, err)
	require.Equal(t, "memory", ev.Subsystem)
	require.Equal(t, "memory32", ev.device())

	ev, err = parseUevent(memoryOnlineFixture)
	require.NoError(t, err)
	require.Equal(t, "online", ev.Action)
}

func TestParseUeventRefusesMalformed(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
		err  string
	}{
		{"empty", nil, "not ACTION@DEVPATH"},
		{"libudev", []byte("libudev\x00\xfe\xed\xca\xfe\x28\x00\x00\x00"), "not ACTION@DEVPATH"},
		{"relative devpath", []byte("add@devices/x\x00SUBSYSTEM=cpu\x00"), "not ACTION@DEVPATH"},
		{"no subsystem", []byte("add@/devices/system/cpu/cpu1\x00ACTION=add\x00"), "SUBSYSTEM missing"},
		{"field without =", []byte("add@/devices/system/cpu/cpu1\x00ACTION\x00SUBSYSTEM=cpu\x00"), "not KEY=VALUE"},
		{"action mismatch", []byte("add@/devices/system/cpu/cpu1\x00ACTION=remove\x00SUBSYSTEM=cpu\x00"), "disagrees"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := parseUevent(tc.in)
			require.ErrorContains(t, err, tc.err)
		})
	}
}
