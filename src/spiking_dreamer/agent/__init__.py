"""The PopSAN-TD3 agent: spiking actor, twin ANN critic and the TD3 update."""

from spiking_dreamer.agent.critic import TwinQCritic
from spiking_dreamer.agent.popsan import PopSpikingActor
from spiking_dreamer.agent.td3 import TD3, polyak_update

__all__ = ["TD3", "PopSpikingActor", "TwinQCritic", "polyak_update"]
