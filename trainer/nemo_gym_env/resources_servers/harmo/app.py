"""NeMo Gym's entry point for the harmo resources server (``harmo.client.nemo_gym``)."""
from harmo.client.nemo_gym import HarmoResourcesServer

if __name__ == "__main__":
    HarmoResourcesServer.run_webserver()
