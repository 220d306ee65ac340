package main

import (
	"bufio"
	"encoding/json"
	"os"
	"strconv"
	"strings"
)

// drainCounts sums what the drains of this project's HTTP servers logged
// at their end ("drain: done"), over the generations of one run: the
// connections each old generation closed because they stayed silent past
// their grace, and those it waited for because a request was on its way.
type drainCounts struct {
	drains     int // "drain: done" records
	closedIdle int // idle keep-alive connections past their grace
	closedNew  int // new connections that sent nothing within their grace
	partial    int // waited for: part of a request had arrived
}

// readDrainCounts reads the JSON log of examples/http (-log json).
func readDrainCounts(path string) drainCounts {
	var d drainCounts
	f, err := os.Open(path)
	if err != nil {
		return d
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), `"drain: done"`) {
			continue
		}
		var rec struct {
			Msg        string `json:"msg"`
			ClosedIdle int    `json:"closed_idle_past_grace"`
			ClosedNew  int    `json:"closed_new_silent_past_grace"`
			Partial    int    `json:"waited_for_partial_requests"`
		}
		if json.Unmarshal(line, &rec) != nil || rec.Msg != "drain: done" {
			continue
		}
		d.drains++
		d.closedIdle += rec.ClosedIdle
		d.closedNew += rec.ClosedNew
		d.partial += rec.Partial
	}
	return d
}

// listenCounters are the machine's TCP listen queue counters
// (/proc/net/netstat, TcpExt): ListenOverflows counts handshakes that
// completed while an accept queue was full (the kernel drops the client's
// ACK, and the client waits for a retransmission of the SYN-ACK: 1 s, then
// 2 s, 4 s, ...), ListenDrops every SYN or ACK dropped at a listener. They
// are counted over the whole machine, so other work on it adds to them.
//
// AbortOnClose counts connections closed while data the process had not
// read was queued on them (the kernel answers with a reset): for an HTTP
// server, a request it closed the connection on without reading.
// AbortOnData counts data that arrived on a connection after the process
// had closed it.
type listenCounters struct {
	overflows, drops          int64
	abortOnClose, abortOnData int64
}

func readListenCounters() listenCounters {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return listenCounters{}
	}
	lines := strings.Split(string(b), "\n")
	var c listenCounters
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "TcpExt:") || !strings.HasPrefix(lines[i+1], "TcpExt:") {
			continue
		}
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j := 1; j < len(names) && j < len(values); j++ {
			v, _ := strconv.ParseInt(values[j], 10, 64)
			switch names[j] {
			case "ListenOverflows":
				c.overflows = v
			case "ListenDrops":
				c.drops = v
			case "TCPAbortOnClose":
				c.abortOnClose = v
			case "TCPAbortOnData":
				c.abortOnData = v
			}
		}
		break
	}
	return c
}

func (c listenCounters) sub(d listenCounters) listenCounters {
	return listenCounters{overflows: c.overflows - d.overflows, drops: c.drops - d.drops,
		abortOnClose: c.abortOnClose - d.abortOnClose, abortOnData: c.abortOnData - d.abortOnData}
}
