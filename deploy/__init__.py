"""Deploy: turn a fleet plan into cloud capacity and handle spot interruptions."""
