-- expect: ok
-- Finding 4: process.pid(), process.id(), process.registry.register and require("ctx") always
-- act for the calling process, whatever tables it tampers with. The attacker (spawned with the
-- context who = "attacker", next to a victim with who = "victim") reaches for the tables the
-- runtime keeps about it: its driver record through a blocked receive's waiter (then rewrites
-- its token with every small integer, its cached PID and context), and the functions on the
-- stack while its chunk's top level runs (debug.info), called with forged records. After each
-- attempt it asks who it is.
local ctx = require("ctx")

local h = require("harness") -- common/lib/harness.lua
local HOST, within, exit_of, ending = h.HOST, h.within, h.exit_of, h.ending
local round_trip, problem, verdict = h.round_trip, h.problem, h.verdict

-- Functions on the stack while this chunk's top level runs, other than its own.
local TOP_LEVEL = {}
if debug and debug.info then
	local own = debug.info(1, "s")
	for level = 1, 20 do
		local f = debug.info(level, "f")
		if f == nil then
			break
		end
		if debug.info(f, "s") ~= own then
			TOP_LEVEL[#TOP_LEVEL + 1] = f
		end
	end
end

local MAX_TOKEN = 40

local function attacker(): string
	local me, my_id = process.pid(), process.id()
	local found = {}
	local n = 0
	local function check(how: string)
		n += 1
		-- (`what` says what gave `got`)
		local function wrong(what: string, got)
			if #found < 25 then
				found[#found + 1] = how .. ": " .. what .. " " .. tostring(got)
			end
		end
		local ok, pid = pcall(process.pid)
		if ok and pid ~= me then
			wrong("process.pid() gave", pid)
		end
		local ok_id, id = pcall(process.id)
		if ok_id and id ~= my_id then
			wrong("process.id() gave", id)
		end
		local ok_get, who = pcall(ctx.get, "who")
		if ok_get and who ~= "attacker" then
			wrong("ctx.get(\"who\") gave", who)
		end
		local ok_all, all = pcall(ctx.all)
		if ok_all and (type(all) ~= "table" or all.who ~= "attacker") then
			wrong("ctx.all().who is", type(all) == "table" and all.who or all)
		end
		local name = "iso-identity-" .. n
		local ok_reg, registered = pcall(process.registry.register, name)
		if ok_reg and registered then
			local holder = process.registry.lookup(name)
			if holder ~= me then
				wrong("process.registry.register bound the name to", holder)
			end
			pcall(process.registry.unregister, name)
		end
	end
	check("untampered")

	-- The driver record, through the waiter of a receive blocked in a coroutine of its own
	-- (which blocks while the main one waits a moment).
	local ch = channel.new()
	coroutine.spawn(function()
		ch:receive()
	end)
	within(channel.new(), "20ms")
	local rec = nil
	pcall(function()
		rec = rawget(ch, "rq")[1].p
	end)
	if type(rec) == "table" then
		local own = rawget(rec, 1)
		for token = 0, MAX_TOKEN do
			if token ~= own then
				pcall(function()
					rec[1] = token
					rec.pid, rec.ctx, rec.loaded = nil, nil, nil
					check("record token set to " .. token)
				end)
				rec[1] = own
			end
		end
		pcall(function()
			rec.pid = "{app:processes|0x00001}"
			rec.ctx = { who = "forged" }
			check("record's cached PID and context replaced")
		end)
		rec.pid, rec.ctx = nil, nil
	end

	-- Functions from the top level's stack, called with forged records.
	local fake_chunk = function()
		return { main = function() end }
	end
	for i, f in TOP_LEVEL do
		for token = 0, MAX_TOKEN do
			pcall(f, { token, false, false, false }, fake_chunk, "main")
			check("top-level stack function #" .. i .. " called with a record of token " .. token)
		end
		if type(rec) == "table" then
			pcall(f, rec, fake_chunk, "main")
		end
	end
	return table.concat(found, "\n")
end

local function case()
	local ready = process.listen("ready")
	local victim = process.with_context({ who = "victim" }):spawn_monitored("app:echo", HOST, process.pid())
	local said, ok = within(ready, "10s")
	assert(ok and said == victim, "the victim did not start")
	local attacker_pid = process.with_context({ who = "attacker" }):spawn_monitored(process.id(), HOST, "attacker")
	local attacked = exit_of(attacker_pid, "20s")
	if ending(attacked) ~= "value " then
		problem("the attacker acted as another process:\n" .. ending(attacked))
	end
	if not round_trip(victim, 1) then
		problem("the victim stopped answering")
	end
	process.send(victim, "stop")
	local ended = exit_of(victim, "10s")
	if ending(ended) ~= "value echo " .. victim then
		problem("the victim ended with " .. ending(ended))
	end
	return verdict()
end

local function main(role: string?)
	if role == "attacker" then
		return attacker()
	end
	return case()
end

return { main = main }
