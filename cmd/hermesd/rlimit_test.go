package main

import "testing"

func TestConnectionCap(t *testing.T) {
	cases := []struct {
		configured int
		nofile     uint64
		want       int
	}{
		{4096, 1 << 20, 4096}, // plenty of descriptors: as configured
		{4096, 1024, 480},     // the common default soft limit
		{4096, 128, 32},
		{4096, 10, 1}, // below the reserve: one connection, never zero
		{4096, 66, 1},
		{10, 1024, 10},
	}
	for _, c := range cases {
		if got := connectionCap(c.configured, c.nofile); got != c.want {
			t.Errorf("connectionCap(%d, %d) = %d, want %d", c.configured, c.nofile, got, c.want)
		}
	}
}
