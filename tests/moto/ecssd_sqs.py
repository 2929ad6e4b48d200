"""SQS at the speed AWS documents, patched into moto at import. Not a change of any answer: moto's own
code still answers every request; only what it costs moto to compute is cut.

AWS: standard queues "support a nearly unlimited number of API calls per second, per API action
(SendMessage, ReceiveMessage, or DeleteMessage)" (SQS Developer Guide, "Amazon SQS standard queues"), and
a queue's backlog is unlimited ("Amazon SQS standard queue quotas", "Messages per queue (backlog)"): a send
or a receive does not slow down as the queue fills.

moto (5.2.5) does. Every message it looks at reads the clock through datetime arithmetic
(moto.core.utils.unix_time: utcnow() minus the epoch, as datetimes), and SendMessage and ReceiveMessage
compute all of a queue's attributes, three scans of every message in it, for each message sent (to read
ContentBasedDeduplication) and each message received (to read MessageRetentionPeriod). So a queue of n
messages costs moto n^2 clock readings: 1,000 sends took 12.5 s and receiving them 56 s, in which most of
them outlived a 60 s retention unreceived (measured in one process, no HTTP). The fleet benchmark's 1,000
sidecars hand over 1,000 registrations at once: profiled there (py-spy), 45% of moto's time went to queue
attributes and 18% to the retention check, and handoffs waited 5 s (p50) to 44 s (p90) in the queue.

Nor is moto's SQS safe under concurrent requests, which its threaded server serves at once and AWS
serves as if one at a time per message (SQS Developer Guide, "Amazon SQS visibility timeout": a received
message is not returned by another ReceiveMessage until its visibility timeout ends). Two receives racing
over one message fail with HTTP 500 after marking it received, so it stays invisible for the visibility
timeout though no consumer got it (seen: 35 "unexpected token '<'" receive failures in one fleet run), and
a delete rebuilding the message list can drop a message sent meanwhile.

The corrections, each keeping moto's result:
- the clock moto.sqs reads is time.time() (the same seconds since the epoch, without datetimes), which
  makes moto's rescans of the queue (still one per send, for its attributes) cheap;
- the messages a receive may return are found with one reading of the clock, not one per message;
- the retention check reads the queue's MessageRetentionPeriod itself, not every attribute of the queue;
- the requests that change messages (send, receive, delete, change visibility) take one lock, one at a
  time; a receive waits for messages (long polling) outside it.
"""

import functools
import threading
import time

from moto.core import utils as core_utils
from moto.sqs import models as sqs_models

_moto_unix_time = core_utils.unix_time


def unix_time(dt=None):
    """Seconds since the epoch: moto's value, read without building datetimes when `dt` is now."""
    return time.time() if dt is None else _moto_unix_time(dt)


def unix_time_millis(dt=None):
    return unix_time(dt) * 1000.0


def is_message_valid_based_on_retention_period(self, queue_name, message):
    # moto reads this one attribute through get_queue_attributes, which computes them all.
    retention_period = self.get_queue(queue_name).message_retention_period
    return retention_period + message.sent_timestamp / 1000 > unix_time()


def receivable_messages(self):
    """Queue.messages: those visible and not delayed (Message.visible and Message.delayed), the clock read once."""
    now = unix_time_millis()
    return [m for m in self._messages if now > m.visible_at and now >= m.delayed_until]


# Re-entrant: a batch call reaches the single-message call it wraps.
_MESSAGES_LOCK = threading.RLock()


def _one_at_a_time(method):
    @functools.wraps(method)
    def locked(*args, **kwargs):
        with _MESSAGES_LOCK:
            return method(*args, **kwargs)

    return locked


_moto_receive_message = sqs_models.SQSBackend.receive_message


def receive_message(self, queue_name, count, wait_seconds_timeout, visibility_timeout,
                    message_attribute_names=None):
    """moto's receive, tried without waiting under the lock; between tries, long polling waits outside
    it, for a message to become receivable or the wait to end (as moto's own loop does)."""
    queue = self.get_queue(queue_name)
    polling_end = time.time() + int(wait_seconds_timeout or 0)
    while True:
        with _MESSAGES_LOCK:
            result = _moto_receive_message(self, queue_name, count, 0, visibility_timeout, message_attribute_names)
        left = polling_end - time.time()
        if result or left <= 0:
            return result
        waiting = time.time()
        queue.wait_for_messages(min(left, 1.0))
        if time.time() - waiting < 0.01:
            # Messages moto counts as visible but would not return (a FIFO group in flight): no busy loop.
            time.sleep(min(left, 0.05))


# moto.sqs.models imported both names from moto.core.utils: its own module globals are what it calls.
sqs_models.unix_time = unix_time
sqs_models.unix_time_millis = unix_time_millis
sqs_models.SQSBackend.is_message_valid_based_on_retention_period = is_message_valid_based_on_retention_period
sqs_models.Queue.messages = property(receivable_messages)
sqs_models.SQSBackend.receive_message = receive_message
for _name in ("send_message", "send_message_batch", "delete_message", "delete_message_batch",
              "change_message_visibility", "change_message_visibility_batch", "purge_queue"):
    setattr(sqs_models.SQSBackend, _name, _one_at_a_time(getattr(sqs_models.SQSBackend, _name)))
