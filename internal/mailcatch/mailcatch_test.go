package mailcatch

import (
	"errors"
	"log/slog"
	"net/smtp"
	"net/textproto"
	"testing"
	"time"
)

func send(addr, id string) error {
	msg := "From: a@lojal.test\r\nTo: b@example.no\r\nMessage-ID: <" + id + ">\r\nSubject: hei\r\n\r\nhei\r\n"
	return smtp.SendMail(addr, nil, "a@lojal.test", []string{"b@example.no"}, []byte(msg))
}

// TestAfterData: the catcher answers the final "." as the hook says, and
// counts attempts per Message-ID so a test can misbehave only on the first.
func TestAfterData(t *testing.T) {
	s, err := Start(slog.New(slog.DiscardHandler), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	var attempts []int
	s.SetAfterData(func(m Message, attempt int) Reply {
		attempts = append(attempts, attempt)
		switch m.MessageID() {
		case "drop@x":
			return Reply{Action: QueueAndDrop}
		case "refuse@x":
			return Reply{Action: Refuse, Code: 554, Text: "no"}
		case "slow@x":
			return Reply{Action: QueueAndDelay, Delay: 200 * time.Millisecond}
		}
		return Reply{}
	})
	if err := send(s.Addr, "drop@x"); err == nil {
		t.Error("a dropped connection must not look like a 250")
	}
	var tp *textproto.Error
	if err := send(s.Addr, "refuse@x"); !errors.As(err, &tp) || tp.Code != 554 {
		t.Errorf("refuse: %v", err)
	}
	start := time.Now()
	if err := send(s.Addr, "slow@x"); err != nil || time.Since(start) < 200*time.Millisecond {
		t.Errorf("slow: %v after %s", err, time.Since(start))
	}
	if err := send(s.Addr, "drop@x"); err == nil {
		t.Error("second drop")
	}
	if got := len(s.Messages()); got != 3 { // drop, slow, drop again; not the refused one
		t.Errorf("kept %d messages, want 3", got)
	}
	if len(attempts) != 4 || attempts[3] != 2 {
		t.Errorf("attempts seen %v, want the second drop as attempt 2", attempts)
	}
}
