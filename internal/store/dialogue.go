package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// RepliedMessage is an email lojal sent, as a reply to it needs it.
type RepliedMessage struct {
	CustomerID string
	MessageID  string
	// Address is where the message went; CustomerEmail is the customer's
	// address now (they may differ after a change of address).
	Address       string
	CustomerEmail string
	JourneyID     string
	StepID        string
	Topic         string
	Subject       string
	At            time.Time
}

// RepliedMessage finds the email with Message-ID messageID lojal sent (or
// may have sent). found is false when there is none.
func (s *Store) RepliedMessage(ctx context.Context, messageID string) (m RepliedMessage, found bool, err error) {
	err = s.pool.QueryRow(ctx, s.q.RepliedMessage, messageID).Scan(&m.CustomerID, &m.MessageID, &m.Address, &m.JourneyID,
		&m.StepID, &m.Topic, &m.At, &m.Subject, &m.CustomerEmail)
	if errors.Is(err, pgx.ErrNoRows) {
		return m, false, nil
	}
	if err != nil {
		return m, false, fmt.Errorf("replied message %s: %w", messageID, err)
	}
	return m, true, nil
}

// Reply is one reply lojal matched to a message it sent, or free text a
// customer wrote on a thank-you page.
type Reply struct {
	ID             string    `json:"id"`
	CustomerID     string    `json:"customer_id"`
	ConversationID string    `json:"conversation_id,omitempty"`
	MessageID      string    `json:"message_id"`
	JourneyID      string    `json:"journey_id,omitempty"`
	StepID         string    `json:"step_id,omitempty"`
	From           string    `json:"from"`
	FromCustomer   bool      `json:"from_customer"`
	Source         string    `json:"source"`
	Subject        string    `json:"subject,omitempty"`
	Body           string    `json:"body"`
	EventID        string    `json:"event_id,omitempty"`
	At             time.Time `json:"at"`
}

// Conversation is a customer's thread with the people who help.
type Conversation struct {
	ID          string     `json:"id"`
	CustomerID  string     `json:"customer_id"`
	MessageID   string     `json:"message_id"`
	JourneyID   string     `json:"journey_id,omitempty"`
	StepID      string     `json:"step_id,omitempty"`
	Topic       string     `json:"topic,omitempty"`
	Helper      string     `json:"helper,omitempty"`
	OpenedAt    time.Time  `json:"opened_at"`
	AnsweredAt  *time.Time `json:"answered_at,omitempty"`
	AnsweredBy  string     `json:"answered_by,omitempty"`
	EscalatedAt *time.Time `json:"escalated_at,omitempty"`
}

// RecordedReply is what RecordReply did.
type RecordedReply struct {
	// New is false when the reply was recorded before (a redelivery).
	New bool
	// Opened is true when this reply opened its conversation, on a
	// redelivery too.
	Opened         bool
	ConversationID string
	// At is when the reply was first taken: a redelivery's event and
	// conversation are the first delivery's.
	At time.Time
}

// RecordReply stores a reply. One from the customer (FromCustomer) opens
// a conversation or joins the one open, under conversationID when it
// opens one; one from another address is kept for the helper and opens
// nothing. Storing the same reply again (by its id) changes nothing.
func (s *Store) RecordReply(ctx context.Context, r Reply, conversationID, topic, helper string) (out RecordedReply, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, s.q.LockCustomer, r.CustomerID); err != nil {
			return err
		}
		var conv *string
		if r.FromCustomer {
			// A redelivered reply finds the conversation it joined.
			var prior string
			err := tx.QueryRow(ctx, s.q.ReplyByID, r.ID).Scan(&prior, new(string), &out.ConversationID, new(string), new(string),
				new(string), new(string), new(bool), new(string), new(string), new(string), new(string), &out.At)
			if err == nil {
				// A conversation a reply opens is named after it.
				out.Opened = out.ConversationID == conversationID
				return nil
			}
			if !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			if err := tx.QueryRow(ctx, s.q.OpenConversation, conversationID, r.CustomerID, r.MessageID, r.JourneyID, r.StepID,
				topic, helper, r.At).Scan(&out.ConversationID, &out.Opened); err != nil {
				return fmt.Errorf("open conversation: %w", err)
			}
			conv = &out.ConversationID
		}
		out.At = r.At
		var id string
		err := tx.QueryRow(ctx, s.q.InsertReply, r.ID, r.CustomerID, conv, r.MessageID, r.JourneyID, r.StepID, r.From,
			r.FromCustomer, r.Source, r.Subject, r.Body, r.EventID, r.At).Scan(&id)
		if errors.Is(err, pgx.ErrNoRows) {
			out.Opened = false
			return nil
		}
		if err != nil {
			return err
		}
		out.New = true
		return nil
	})
	if isForeignKeyViolation(err) {
		return out, fmt.Errorf("record reply %s: customer %s: %w", r.ID, r.CustomerID, ErrNotFound)
	}
	if err != nil {
		return out, fmt.Errorf("record reply %s: %w", r.ID, err)
	}
	return out, nil
}

func scanReply(row pgx.Row) (Reply, error) {
	var r Reply
	err := row.Scan(&r.ID, &r.CustomerID, &r.ConversationID, &r.MessageID, &r.JourneyID, &r.StepID, &r.From, &r.FromCustomer,
		&r.Source, &r.Subject, &r.Body, &r.EventID, &r.At)
	return r, err
}

// ReplyByID loads a reply.
func (s *Store) ReplyByID(ctx context.Context, id string) (Reply, error) {
	r, err := scanReply(s.pool.QueryRow(ctx, s.q.ReplyByID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return r, fmt.Errorf("reply %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return r, fmt.Errorf("load reply %s: %w", id, err)
	}
	return r, nil
}

func scanConversation(row pgx.Row) (Conversation, error) {
	var c Conversation
	err := row.Scan(&c.ID, &c.CustomerID, &c.MessageID, &c.JourneyID, &c.StepID, &c.Topic, &c.Helper, &c.OpenedAt,
		&c.AnsweredAt, &c.AnsweredBy, &c.EscalatedAt)
	return c, err
}

// Conversation loads a conversation.
func (s *Store) Conversation(ctx context.Context, id string) (Conversation, error) {
	c, err := scanConversation(s.pool.QueryRow(ctx, s.q.ConversationByID, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("conversation %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("load conversation %s: %w", id, err)
	}
	return c, nil
}

// AnswerConversation marks a conversation answered. answered is false when
// it was answered before (the first answer counts); a conversation that
// does not exist is ErrNotFound.
func (s *Store) AnswerConversation(ctx context.Context, id, by string, at time.Time) (answered bool, err error) {
	var got string
	err = s.pool.QueryRow(ctx, s.q.AnswerConversation, id, at, by).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		if _, err := s.Conversation(ctx, id); err != nil {
			return false, err
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("answer conversation %s: %w", id, err)
	}
	return true, nil
}

// MarkEscalated records that a conversation passed its response-time
// target unanswered. escalated is false when it was answered or escalated
// already.
func (s *Store) MarkEscalated(ctx context.Context, id string, at time.Time) (escalated bool, err error) {
	var got string
	err = s.pool.QueryRow(ctx, s.q.MarkEscalated, id, at).Scan(&got)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("escalate conversation %s: %w", id, err)
	}
	return true, nil
}

// Dialogue is a customer's replies, conversations and answers.
type Dialogue struct {
	Conversations []Conversation `json:"conversations"`
	Replies       []Reply        `json:"replies"`
	Answers       []SurveyAnswer `json:"answers"`
}

// SurveyAnswer is a customer's answer to one question.
type SurveyAnswer struct {
	Survey   string    `json:"survey"`
	Answer   string    `json:"answer"`
	FreeText string    `json:"free_text,omitempty"`
	At       time.Time `json:"at"`
	// Changes are later answers, recorded and not counted.
	Changes []string `json:"changes,omitempty"`
}

// Dialogue loads a customer's replies, conversations and answers.
func (s *Store) Dialogue(ctx context.Context, customerID string) (Dialogue, error) {
	d := Dialogue{Conversations: []Conversation{}, Replies: []Reply{}, Answers: []SurveyAnswer{}}
	rows, err := s.pool.Query(ctx, s.q.CustomerConvs, customerID)
	if err != nil {
		return d, fmt.Errorf("conversations of %s: %w", customerID, err)
	}
	d.Conversations, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Conversation, error) { return scanConversation(row) })
	if err != nil {
		return d, fmt.Errorf("conversations of %s: %w", customerID, err)
	}
	rows, err = s.pool.Query(ctx, s.q.CustomerReplies, customerID)
	if err != nil {
		return d, fmt.Errorf("replies of %s: %w", customerID, err)
	}
	d.Replies, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (Reply, error) { return scanReply(row) })
	if err != nil {
		return d, fmt.Errorf("replies of %s: %w", customerID, err)
	}
	rows, err = s.pool.Query(ctx, s.q.CustomerSurveyAns, customerID)
	if err != nil {
		return d, fmt.Errorf("answers of %s: %w", customerID, err)
	}
	d.Answers, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (SurveyAnswer, error) {
		var a SurveyAnswer
		err := row.Scan(&a.Survey, &a.Answer, &a.FreeText, &a.At, &a.Changes)
		return a, err
	})
	if err != nil {
		return d, fmt.Errorf("answers of %s: %w", customerID, err)
	}
	return d, nil
}

// RecordedAnswer is what RecordAnswer did.
type RecordedAnswer struct {
	// First is true when this answer is the one that counts (it was
	// recorded now); Answer is the one that counts either way.
	First   bool
	Answer  string
	EventID string
	// Changed is true when a later, different answer was recorded as a
	// change; Noted when it was noted now (not already the latest change).
	Changed bool
	Noted   bool
}

// RecordAnswer records a one-click answer: the first counts, the same
// answer again changes nothing, and a different later one is recorded as
// a change only.
func (s *Store) RecordAnswer(ctx context.Context, customerID, survey, answer, eventID string, at time.Time) (out RecordedAnswer, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, s.q.InsertSurveyAnswer, customerID, survey, answer, eventID, at).Scan(&out.EventID)
		if err == nil {
			out.First, out.Answer = true, answer
			return nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		var text string
		var first time.Time
		if err := tx.QueryRow(ctx, s.q.SurveyAnswer, customerID, survey).Scan(&out.Answer, &text, &out.EventID, &first); err != nil {
			return err
		}
		if out.Answer == answer {
			return nil
		}
		out.Changed = true
		tag, err := tx.Exec(ctx, s.q.InsertSurveyChange, customerID, survey, answer, at)
		out.Noted = tag.RowsAffected() == 1
		return err
	})
	if isForeignKeyViolation(err) {
		return out, fmt.Errorf("record answer: customer %s: %w", customerID, ErrNotFound)
	}
	if err != nil {
		return out, fmt.Errorf("record answer %s/%s: %w", customerID, survey, err)
	}
	return out, nil
}

// SetAnswerText keeps the free text a customer wrote with their answer.
func (s *Store) SetAnswerText(ctx context.Context, customerID, survey, text string) error {
	if _, err := s.pool.Exec(ctx, s.q.SetSurveyText, customerID, survey, text); err != nil {
		return fmt.Errorf("answer text %s/%s: %w", customerID, survey, err)
	}
	return nil
}
