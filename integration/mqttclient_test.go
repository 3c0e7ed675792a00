package integration

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// mqttClient is a minimal MQTT 3.1.1 client for the benchmarks: clean
// session, QoS 1 publish and subscribe, nothing else. It stands for a
// sensor; timing it needs no client process between the clock and the
// socket (mosquitto_pub and mosquitto_sub are used where timing is not the
// point). Package mqtt is the only importer of paho.
type mqttClient struct {
	conn net.Conn
	wmu  sync.Mutex
	w    *bufio.Writer
	id   uint16

	msgs  chan mqttMsg  // PUBLISHes received
	acks  chan struct{} // one per PUBACK received
	ready chan struct{} // CONNACK, SUBACK
}

type mqttMsg struct {
	topic   string
	payload []byte
	at      time.Time
}

func dialMQTT(t testing.TB, port int, clientID string) *mqttClient {
	t.Helper()
	conn, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		t.Fatal(err)
	}
	conn.(*net.TCPConn).SetNoDelay(true)
	c := &mqttClient{conn: conn, w: bufio.NewWriter(conn), msgs: make(chan mqttMsg, 1<<16),
		acks: make(chan struct{}, 1<<16), ready: make(chan struct{}, 4)}
	t.Cleanup(func() { conn.Close() })
	go c.read()
	// CONNECT: protocol "MQTT" level 4, clean session, keepalive 0.
	var body []byte
	body = appendString(body, "MQTT")
	body = append(body, 4, 0x02, 0, 0)
	body = appendString(body, clientID)
	c.send(0x10, body)
	c.wait(t, "CONNACK")
	return c
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func (c *mqttClient) send(header byte, body []byte) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.w.WriteByte(header)
	n := len(body)
	for {
		d := byte(n % 128)
		n /= 128
		if n > 0 {
			d |= 0x80
		}
		c.w.WriteByte(d)
		if n == 0 {
			break
		}
	}
	c.w.Write(body)
	c.w.Flush()
}

func (c *mqttClient) wait(t testing.TB, what string) {
	t.Helper()
	select {
	case <-c.ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("no %s from the broker", what)
	}
}

func (c *mqttClient) subscribe(t testing.TB, filter string) {
	c.id++
	body := binary.BigEndian.AppendUint16(nil, c.id)
	body = appendString(body, filter)
	body = append(body, 1)
	c.send(0x82, body)
	c.wait(t, "SUBACK")
}

// publish sends a QoS 1 PUBLISH; its PUBACK arrives on acks.
func (c *mqttClient) publish(topic string, payload []byte) {
	c.wmu.Lock()
	c.id++
	if c.id == 0 {
		c.id = 1
	}
	id := c.id
	c.wmu.Unlock()
	body := appendString(nil, topic)
	body = binary.BigEndian.AppendUint16(body, id)
	c.send(0x32, append(body, payload...))
}

func (c *mqttClient) read() {
	r := bufio.NewReader(c.conn)
	for {
		h, err := r.ReadByte()
		if err != nil {
			return
		}
		n, mult := 0, 1
		for {
			d, err := r.ReadByte()
			if err != nil {
				return
			}
			n += int(d&0x7f) * mult
			mult *= 128
			if d&0x80 == 0 {
				break
			}
		}
		body := make([]byte, n)
		if _, err := io.ReadFull(r, body); err != nil {
			return
		}
		at := time.Now()
		switch h >> 4 {
		case 2, 9: // CONNACK, SUBACK
			c.ready <- struct{}{}
		case 4: // PUBACK
			c.acks <- struct{}{}
		case 3: // PUBLISH
			tl := int(binary.BigEndian.Uint16(body))
			topic, rest := string(body[2:2+tl]), body[2+tl:]
			if (h>>1)&3 > 0 {
				c.send(0x40, rest[:2]) // PUBACK with its packet id
				rest = rest[2:]
			}
			c.msgs <- mqttMsg{topic: topic, payload: rest, at: at}
		}
	}
}

// next waits for the next message on topic, dropping others.
func (c *mqttClient) next(t testing.TB, topic string) mqttMsg {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case m := <-c.msgs:
			if m.topic == topic {
				return m
			}
		case <-timeout:
			t.Fatalf("no message on %s within 30s", topic)
		}
	}
}
