"""Load model for a running `make up`: anonymous, registered and pro users searching, streaming and
validating. Run with `make loadtest` (headless, fixed duration, CSV + HTML report under var/loadtest/).

Registered and pro users register through the API and read their verification code from the dev
mailbox, so the target must run with DEV_MAILBOX=true (make up does). Pro users are upgraded through the
PhonePe simulator. Everything stays on the target host given with --host.
"""

from __future__ import annotations

import json
import random
import re
import uuid

from locust import FastHttpUser, between, events, task

QUERIES = [
    "resize images on the fly behind a CDN",
    "stop idle EC2 instances at night",
    "video on demand transcoding pipeline",
    "serverless REST API with DynamoDB",
    "data lake on S3 with Glue and Athena",
    "chatbot that answers questions from our documents",
]


def stream_to_done(user: FastHttpUser, events_url: str) -> None:
    with user.client.get(events_url, stream=True, name="/api/searches/{id}/events", catch_response=True) as r:
        body = r.content.decode(errors="replace") if r.content else ""
        if "event: done" in body:
            r.success()
        elif "event: error" in body:
            r.failure("stream ended with error")
        else:
            r.failure("stream ended without done")


class AnonymousUser(FastHttpUser):
    weight = 3
    wait_time = between(1, 3)

    @task
    def search(self) -> None:
        with self.client.post("/api/searches", json={"query": random.choice(QUERIES)}, name="/api/searches",
                              catch_response=True) as r:
            if r.status_code == 429:
                r.success()  # the anonymous quota doing its job
                return
            if r.status_code != 202:
                r.failure(f"status {r.status_code}")
                return
        stream_to_done(self, r.json()["events_url"])


class RegisteredUser(FastHttpUser):
    weight = 2
    wait_time = between(0.5, 2)
    pro = False

    def on_start(self) -> None:
        csrf = self.client.get("/api/auth/csrf").json()["csrf_token"]
        self.headers = {"X-CSRFToken": csrf}
        email = f"load-{uuid.uuid4().hex[:10]}@example.com"
        self.client.post("/api/auth/register", json={"email": email, "password": "load-test-password"},
                         headers=self.headers)
        mail = self.client.get(f"/dev/mailbox/messages?to={email}", name="/dev/mailbox/messages").json()
        code = re.search(r"\b(\d{6})\b", mail[0]["text"]).group(1)
        self.client.post("/api/auth/verify", json={"email": email, "code": code})
        self.token = self.client.post("/api/generate-solution-token", json={"solution_id": "aws-solution-finder"},
                                      headers=self.headers).json()["token"]
        if self.pro:
            order = self.client.post("/api/payments/checkout", json={"plan": "pro", "solution_id": "aws-solution-finder"},
                                     headers=self.headers).json()
            simulator = order["redirect_url"].split("/simulator/")[0]
            self.client.post(f"{simulator}/simulator/orders/{order['merchant_order_id']}/complete",
                             name="simulator complete")

    @task(3)
    def validate(self) -> None:
        with self.client.post("/api/validate-solution-token", json={"token": self.token, "solution_id": "aws-solution-finder"},
                              name="/api/validate-solution-token", catch_response=True) as r:
            if r.status_code in (200, 429):
                r.success()

    @task(1)
    def search(self) -> None:
        with self.client.post("/api/searches", json={"query": random.choice(QUERIES)}, name="/api/searches",
                              headers={"Authorization": f"Bearer {self.token}"}, catch_response=True) as r:
            if r.status_code == 429:
                r.success()
                return
            if r.status_code != 202:
                r.failure(f"status {r.status_code}")
                return
        stream_to_done(self, json.loads(r.content)["events_url"])


class ProUser(RegisteredUser):
    weight = 1
    pro = True


@events.init_command_line_parser.add_listener
def _(parser) -> None:  # type: ignore[no-untyped-def]
    parser.add_argument("--note", default="", help="free text recorded with the run")
