-- expect: ok
-- timeout: 60
-- Finding 8: a payload whose copy would be huge though its table is small (each level refers
-- twice to the level below: 2^40 leaves) is refused with "payload too large", found while
-- copying: within seconds, not after copying terabytes (10 s are allowed for a debug build on a
-- busy machine; the refusal takes time in proportion to the 64 MiB bound). Sending and spawning
-- with it are refused (an error raised, or nil and the error), and the sender keeps working.

-- Helpers: the same block in every case that uses them (each case file stands alone).

local time = require("time")

local HOST = "app:processes"
-- Captured when the chunk loads: what an attacker does to the module later cannot change it.
local after = time.after

-- The next value on `ch` within `d`: the value and true, or nil and false on timeout.
local function within(ch, d: string): (any, boolean)
	local timeout = after(d)
	local r = channel.select({ ch:case_receive(), timeout:case_receive() })
	if r.channel == ch then
		return r.value, true
	end
	return nil, false
end

-- EXIT events seen so far, by PID.
local exits = {}

-- The EXIT event of `pid` within `d`, or nil.
local function exit_of(pid: string, d: string)
	local timeout = after(d)
	local events = process.events()
	while exits[pid] == nil do
		local r = channel.select({ events:case_receive(), timeout:case_receive() })
		if r.channel ~= events then
			return nil
		end
		local ev = r.value
		if type(ev) == "table" and ev.kind == "pid.exit" then
			exits[ev.from] = ev
		end
	end
	return exits[pid]
end

-- How a process ended, from its EXIT event.
local function ending(ev): string
	if ev == nil then
		return "no EXIT"
	end
	local result = ev.result or {}
	if result.error ~= nil then
		return "error " .. tostring(result.error)
	end
	return "value " .. tostring(result.value)
end

-- The error text of an EXIT event ("" when it ended normally or never).
local function error_of(ev): string
	return ev and ev.result and ev.result.error and tostring(ev.result.error) or ""
end

-- Starts the common echo process, monitored, and waits for its "ready".
local function start_echo(): string
	local ready = process.listen("ready")
	local pid = process.spawn_monitored("app:echo", HOST, process.pid())
	local said, ok = within(ready, "10s")
	assert(ok and said == pid, "the echo process did not start")
	return pid
end

-- One round trip with an echo process: true when its pong came back within `d`.
local function round_trip(echo: string, n: number, d: string?): boolean
	local pongs = process.listen("pong")
	process.send(echo, "ping", n)
	local got, ok = within(pongs, d or "5s")
	return ok and got == n
end

-- Problems found so far; the case's verdict lists them all.
local problems = {}
local function problem(text: string)
	problems[#problems + 1] = text
end
local function verdict(): string
	if #problems == 0 then
		return "ok"
	end
	error(#problems .. " problem(s):\n" .. table.concat(problems, "\n"), 0)
end

-- End of the helpers.

local function refusal(ok: boolean, a, b): string?
	if not ok then
		return tostring(a)
	elseif a == nil then
		return tostring(b)
	end
	return nil
end

local function case()
	local echo = start_echo()
	local t = { 1 }
	for _ = 1, 40 do
		t = { t, t }
	end
	local attempts = {
		{ "process.send", function()
			return process.send(echo, "x", t)
		end },
		{ "process.send (nested in a table)", function()
			return process.send(echo, "x", { inner = t })
		end },
		{ "process.spawn", function()
			return process.spawn("app:echo", HOST, t)
		end },
	}
	for _, attempt in attempts do
		local started = os.clock()
		local ok, a, b = pcall(attempt[2])
		local took = os.clock() - started
		local why = refusal(ok, a, b)
		if why == nil then
			problem(attempt[1] .. " accepted a payload of 2^40 leaves")
		elseif not string.find(why, "payload too large", 1, true) then
			problem(attempt[1] .. " refused it, but not as too large: " .. why)
		end
		if took > 10 then
			problem(string.format("%s took %.1fs to refuse it", attempt[1], took))
		end
	end
	if not round_trip(echo, 1) then
		problem("the sender could not exchange messages afterwards")
	end
	return verdict()
end

local function main()
	return case()
end

return { main = main }
