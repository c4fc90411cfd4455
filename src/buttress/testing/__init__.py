"""Fakes shipped as product features: a scripted provider, a chaos wrapper, a manual clock.

Owns: test doubles usable from tests, config and the gateway. Imports only core values and the
provider seam.
"""

from buttress.testing.chaos import ChaosProvider, ChaosSettings, Latency
from buttress.testing.clock import ManualClock
from buttress.testing.fake import FakeProvider, Reply

__all__ = ["ChaosProvider", "ChaosSettings", "FakeProvider", "Latency", "ManualClock", "Reply"]
