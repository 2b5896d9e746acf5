package webhook_test

import (
	"os"
	"testing"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

// TestMain routes the webhook's structured logs to the test output
// (STAGE_WEBHOOK_LOG=debug shows every admission).
func TestMain(m *testing.M) {
	level := zapcore.InfoLevel
	if os.Getenv("STAGE_WEBHOOK_LOG") == "debug" {
		level = zapcore.DebugLevel
	}
	ctrl.SetLogger(zap.New(zap.WriteTo(os.Stderr), zap.Level(level)))
	os.Exit(m.Run())
}
