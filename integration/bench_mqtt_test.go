package integration

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkMQTT measures, for mosquitto and for the embedded broker in one
// run:
//
//   - latency, QoS 1: publish to a bound topic, the function runs, its
//     reply arrives at the publisher's own subscription; against the
//     broker's own round trip (publish to a topic the same client
//     subscribes to), interleaved sample by sample;
//   - sustained QoS 1 messages per second through the durable inbox with a
//     trivial function (testfn's echo, http mode), a burst published by 4
//     clients with 25 messages in flight each, until every reply arrived;
//     against the same burst through the broker alone.
func BenchmarkMQTT(b *testing.B) {
	const samples, burst = 1000, 5000
	fmt.Printf("\nmqtt QoS 1: %d interleaved round trips each (one client), then bursts of %d (4 publishers)\n", samples, burst)
	fmt.Printf("%-10s %-27s %20s %20s %10s %8s\n", "broker", "what", "through function", "broker alone", "added", "ratio")
	for _, name := range []string{"mosquitto", "embedded"} {
		br := embeddedBroker(b)
		if name == "mosquitto" {
			br = mosquittoBroker(b, false)
		}
		a := mqttAgent(b, br)
		a.mustCLI("deploy", "echo", "--image", built.testfn, "--mqtt", "bench/in=bench/out")
		c := dialMQTT(b, br.port, "bench-"+name)
		c.subscribe(b, "bench/out")
		c.subscribe(b, "bench/base")
		payload := []byte("sensor reading 21.5")
		c.publish("bench/in", payload) // a cold start, not measured
		c.next(b, "bench/out")

		var viaFn, viaBroker []time.Duration
		for range samples {
			start := time.Now()
			c.publish("bench/base", payload)
			viaBroker = append(viaBroker, c.next(b, "bench/base").at.Sub(start))
			start = time.Now()
			c.publish("bench/in", payload)
			viaFn = append(viaFn, c.next(b, "bench/out").at.Sub(start))
		}
		f50, f99, b50, b99 := pct(viaFn, 50), pct(viaFn, 99), pct(viaBroker, 50), pct(viaBroker, 99)
		fmt.Printf("%-10s %-27s %20s %20s %10s %7.1fx\n", name, "round trip p50", us(f50), us(b50), us(f50-b50), float64(f50)/float64(b50))
		fmt.Printf("%-10s %-27s %20s %20s %10s %7.1fx\n", "", "round trip p99", us(f99), us(b99), us(f99-b99), float64(f99)/float64(b99))

		fnRate := burstRate(b, c, br.port, "bench/in", "bench/out", payload, burst)
		brRate := burstRate(b, c, br.port, "bench/base", "bench/base", payload, burst)
		fmt.Printf("%-10s %-27s %18.0f/s %18.0f/s %10s %7.2fx\n", "", "sustained msgs/s", fnRate, brRate, "", fnRate/brRate)

		b.ReportMetric(float64(f50)/1e3, name+"-fn-p50-us")
		b.ReportMetric(float64(f99)/1e3, name+"-fn-p99-us")
		b.ReportMetric(float64(b50)/1e3, name+"-broker-p50-us")
		b.ReportMetric(float64(b99)/1e3, name+"-broker-p99-us")
		b.ReportMetric(float64(f50-b50)/1e3, name+"-added-p50-us")
		b.ReportMetric(fnRate, name+"-fn-msgs/s")
		b.ReportMetric(brRate, name+"-broker-msgs/s")
		a.stop()
	}
}

// burstRate publishes n messages on topic from 4 clients (sensors), each
// with at most 25 unacknowledged, and returns messages per second until n
// arrived on want at c. Several publishers matter for the embedded broker:
// it reads a client's next packet only once the inbox has taken the last
// one (committed and fsynced), so one client gets one fsync per message,
// while messages of several clients share one.
func burstRate(b *testing.B, c *mqttClient, port int, topic, want string, payload []byte, n int) float64 {
	const publishers, window = 4, 25
	pubs := make([]*mqttClient, publishers)
	for i := range pubs {
		pubs[i] = dialMQTT(b, port, fmt.Sprintf("bench-pub-%d-%d", i, time.Now().UnixNano()))
	}
	start := time.Now()
	for _, p := range pubs {
		go func() {
			for i := range n / publishers {
				if i >= window {
					<-p.acks
				}
				p.publish(topic, payload)
			}
		}()
	}
	for range n / publishers * publishers {
		c.next(b, want)
	}
	rate := float64(n/publishers*publishers) / time.Since(start).Seconds()
	for _, p := range pubs {
		p.conn.Close()
	}
	return rate
}
