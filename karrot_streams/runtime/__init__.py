"""The batch-at-a-time path through Faust: fetched records reach an agent together.

Faust delivers every record with its own task, lock and loop iteration; on this pipeline that
was most of a worker's CPU. Here a fetch is handed to the agents' queues in one step, agents take
what is queued in one step, ack by the batch, and produce through aiokafka's batch builder.
Every reach into Faust, mode or aiokafka internals lives in :mod:`.internals`.
"""
