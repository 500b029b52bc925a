package pipeline

// Level is a Python logging level, as the seed's event log used them; the
// event log and the OTLP log records map events to levels the same way.
type Level int

// Levels.
const (
	LevelDebug    Level = 10
	LevelInfo     Level = 20
	LevelWarning  Level = 30
	LevelError    Level = 40
	LevelCritical Level = 50
)

func (l Level) String() string {
	switch l {
	case LevelDebug:
		return "DEBUG"
	case LevelInfo:
		return "INFO"
	case LevelWarning:
		return "WARNING"
	case LevelError:
		return "ERROR"
	}
	return "CRITICAL"
}

// SeedLevel is the seed's mapping of an event to a level: forward DEBUG,
// audit INFO (WARNING on failure), everything else INFO.
func (ev *Event) SeedLevel() Level {
	switch ev.Kind {
	case KindForward:
		return LevelDebug
	case KindAudit:
		if ev.Audit != nil && !ev.Audit.Success {
			return LevelWarning
		}
	}
	return LevelInfo
}
