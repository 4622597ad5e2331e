"""Real SIP peers for Trunkline's tests and benchmarks (loopback only).

Why: Trunkline must interoperate with carriers and phones it did not write,
so its SIP tests talk to SIPp (Debian ``sip-tester``) and baresip (Debian
``baresip-core``) instead of to mocks.  ``tests/test_peers_selfcheck.py``
proves these peers work before any Trunkline test relies on them.

CI needs: ``apt-get install -y --no-install-recommends sip-tester
baresip-core`` (``sox`` is optional, for humans inspecting recordings).

Modules
-------
``sipp``     :class:`~tests.peers.sipp.Sipp` (+ ``uas()``, ``uac()``,
             ``proxy_auth_uas()``), :class:`~tests.peers.sipp.SippResult`.
``baresip``  :class:`~tests.peers.baresip.Baresip`, an auto-answering phone
             that plays a WAV and records what it hears.
``audio``    ``write_tone_wav()``, ``wav_stats()``.

Scenarios (``scenarios/*.xml``)
-------------------------------
Carrier side (UAS; point Trunkline's trunk at ``Sipp.target``):

``uas_answer``         100, 200 + SDP (PCMU/PCMA/telephone-event), wait BYE.
                       Use ``rtp_echo=True`` to echo RTP.
``uas_ring_answer``    100, 180, ring ``pause_ms``, 200 + SDP, wait BYE.
``uas_busy``           486, expects the ACK.
``uas_unavailable``    503, expects the ACK.
``uas_ring_cancel``    100, 180 forever; expects CANCEL -> 200 + 487 -> ACK.
``uas_auth_401``       401 (qop=auth) -> checks ``Authorization`` with
                       ``verifyauth`` against keys ``auth_user``/``auth_pass``
                       -> 200, else 403 and the call counts FAILED.
``uas_auth_407``       407 -> checks ``Proxy-Authorization`` against digests
                       precomputed by ``proxy_auth_uas()`` -> 200 / 403.
``uas_reinvite_hold``  answers, then re-INVITE ``a=sendonly``; the call
                       FAILS unless the 200 answer has ``a=recvonly``.
``uas_answer_bye``     answers, sends BYE after ``pause_ms``.

Caller side (UAC; ``uac(target, ...)``, the user part is ``service``):

``uac_call``       INVITE + SDP, handles one 401/407 (``auth_user``/
                   ``auth_password``), ACK, hold ``pause_ms``, BYE.  Non-2xx
                   finals are ACKed and count as a FAILED call.
``uac_cancel``     INVITE, waits for 180, ``pause_ms``, CANCEL, 487 -> ACK.
``uac_wait_bye``   INVITE, ACK, waits for the callee's BYE.
``uac_reinvite``   INVITE, ACK, answers a re-INVITE with ``a=<answer_dir>``.
``uac_pcap``       INVITE (PCMA), ACK, ``play_pcap_audio @PCAP@`` (pass
                   ``scenario_vars={"PCAP": ...}``), ``pause_ms``, BYE.

Conventions shared by all scenarios: the single bare ``<pause/>`` is SIPp
``-d`` (``pause_ms``); ``[caller]``, ``[answer_dir]``, ``[auth_*]`` come from
``-key`` with defaults in :data:`~tests.peers.sipp.DEFAULT_KEYS`; a UAS
marks a call FAILED with a ``check_it`` ereg that cannot match on its last
message, because SIPp then finishes the dialog and only flags the call (a
``stop_call`` in a ``<nop>`` is ignored by SIPp 3.6.1).
"""
