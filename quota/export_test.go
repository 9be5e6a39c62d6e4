package quota

import "time"

// CooldownUntil is the end of the cooldown by the local clock; zero or past if none.
func (s *Shared) CooldownUntil() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cooldown
}
