package loadtest

import (
	"testing"
)

// These run without ACMEHUB_BENCH: they check the parsing of dnsperf 2.x
// output the load tests depend on.

const dnsperfOK = `DNS Performance Testing Tool
Version 2.10.0

[Status] Command line: dnsperf -s 127.0.0.1 -p 40939 -d q.txt -l 10 -c 8 -T 1 -q 200
[Status] Sending queries (to 127.0.0.1:40939)
[Status] Started at: Sun Nov 29 17:00:35 2026
[Status] Stopping after 10.000000 seconds
[Status] Testing complete (time limit)

Statistics:

  Queries sent:         461384
  Queries completed:    461338 (99.99%)
  Queries lost:         46 (0.01%)

  Response codes:       NOERROR 419398 (90.91%), NXDOMAIN 41940 (9.09%)
  Average packet size:  request 71, response 162
  Run time (s):         10.003183
  Queries per second:   46119.119775

  Average Latency (s):  0.003413 (min 0.000021, max 0.075168)
  Latency StdDev (s):   0.002476

`

const dnsperfAllLost = `Statistics:

  Queries sent:         1
  Queries completed:    0 (0.00%)
  Queries lost:         1 (100.00%)

  Response codes:       
  Average packet size:  request 29, response 0
  Run time (s):         1.000644
  Queries per second:   0.000000

  Average Latency (s):  0.000000 (min 0.000000, max 0.000000)
`

func TestParseDNSPerf(t *testing.T) {
	r, err := parseDNSPerf(dnsperfOK)
	if err != nil {
		t.Fatal(err)
	}
	if r.Sent != 461384 || r.Completed != 461338 || r.Lost != 46 || r.QPS != 46119.119775 ||
		r.AvgLat != 0.003413 || r.MinLat != 0.000021 || r.MaxLat != 0.075168 || r.StdDevLat != 0.002476 {
		t.Errorf("parsed %+v", r)
	}
	if r.LostPct < 0.0099 || r.LostPct > 0.0100 {
		t.Errorf("lost %v%%, want about 0.00997%%", r.LostPct)
	}
	if r.RCodes != "NOERROR 419398 (90.91%), NXDOMAIN 41940 (9.09%)" {
		t.Errorf("rcodes %q", r.RCodes)
	}
	if err := r.checkRcodes(); err != nil {
		t.Errorf("checkRcodes: %v", err)
	}

	r, err = parseDNSPerf(dnsperfAllLost)
	if err != nil {
		t.Fatal(err)
	}
	if r.LostPct != 100 || r.RCodes != "" || r.StdDevLat != 0 {
		t.Errorf("all lost: parsed %+v", r)
	}
	if err := r.checkRcodes(); err == nil {
		t.Error("checkRcodes accepted a run with no answers")
	}

	if _, err := parseDNSPerf("dnsperf: cannot open file"); err == nil {
		t.Error("parsed output without statistics")
	}
}

func TestCheckRcodesRefusesOtherCodes(t *testing.T) {
	r := perfResult{Completed: 110, RCodes: "NOERROR 90 (81.82%), NXDOMAIN 10 (9.09%), SERVFAIL 10 (9.09%)"}
	if err := r.checkRcodes(); err == nil {
		t.Error("SERVFAIL answers were accepted")
	}
	r = perfResult{Completed: 110, RCodes: "NOERROR 110 (100.00%)"}
	if err := r.checkRcodes(); err == nil {
		t.Error("a run without NXDOMAIN answers was accepted")
	}
}
