-- expect: ok
-- A program can rebuild a table that looks like another process's inbox (its PID gives the slot)
-- and call the inbox's own `receive` on it: it must only ever reach its own mailbox, and stay
-- itself. The metatables it reaches are shared by its shard's processes: it cannot change them.
local function main()
	local me = process.pid()
	local inbox = process.inbox()
	local victim = process.spawn("app:holder", "app:processes", me)
	assert(inbox:receive():topic() == "ready")
	-- The victim waits on its inbox now; this message waits for it in its mailbox.
	process.send(victim, "secret", "not yours")
	process.send(me, "mine", "own")
	local slot = tonumber(string.match(victim, "|0x(%x+)}"), 16) % 2 ^ 32
	local mt = getmetatable(inbox)
	assert(type(mt) == "table", "no metatable to forge with")
	local forged = setmetatable({ n = 0, bh = 1, ext = true, inbox = { token = slot } }, mt)
	-- A table made to look like a channel is none: refused, and nothing is taken.
	local ok_forged, err_forged = pcall(mt.__index.receive, forged)
	assert(not ok_forged and string.find(err_forged, "not a channel"), tostring(err_forged))
	assert(process.pid() == me, "the running process changed")
	assert(inbox:receive():topic() == "mine", "the caller's own message is still there")
	-- Called without a channel, the inbox's receive says so, at the caller's line.
	local ok_nil, err_nil = pcall(inbox.receive)
	assert(not ok_nil and string.find(err_nil, "not a channel"), tostring(err_nil))
	-- Nor can it change the methods every process of its shard shares.
	assert(not pcall(function() mt.__index.receive = function() end end), "the inbox's methods changed")
	local channel_mt = getmetatable(channel.new(1))
	assert(not pcall(function() channel_mt.send = function() end end), "a channel's methods changed")
	-- The victim still gets its message.
	assert(inbox:receive():payload():data() == "not yours", "the victim lost its message")
	return "ok"
end
return { main = main }
