-- Light load: each connection waits 5 ms after an answer before its next request (under 200
-- requests/s on one connection). Between requests the proxy's loop is idle, as it is for most of
-- a real service's day, so what the proxy adds is its own path, not a queue behind the work a
-- closed loop (the next request the moment the answer arrives) piles up.
function delay()
  return 5
end
