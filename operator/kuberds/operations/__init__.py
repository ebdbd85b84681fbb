"""What the kinds' handlers share. Each module is one operation over any server kind:

server_pass     a reconcile pass in three steps: observe (every read), build (pure), apply
secrets         references to users' Secrets, generated credentials
certificates    the server's CA and served certificate, reissued when due
restore         where a new server's data comes from (snapshot, point in time)
storage         growing volumes in place
server_status   members, endpoints and the agents' reports folded into status
status          publishing status with Events
rollout         rolling pods to a new template, with a switchover for the primary
final_snapshot  the finalizer that takes a final DBSnapshot
drift           putting hand-edited children back
agents          the operator's HTTP client for the agents' API
"""
