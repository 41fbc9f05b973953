"""Load for the canary webhook tests, run by Flagger's load tester as a rollout hook's command.

One user task: GET the path in CANARY_PATH (the simulated app's canary pod) on the host given with --host, five
times a second per user. The command bounds it in time (-t) and users (-u); every request goes to 127.0.0.1.
"""

import os

from locust import HttpUser, constant_throughput, task


class Canary(HttpUser):
    wait_time = constant_throughput(5)

    @task
    def serve(self) -> None:
        self.client.get(os.environ["CANARY_PATH"])
