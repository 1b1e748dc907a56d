-- The referee of the isolation fuzz (see ../isolation_fuzz.rs). Runs on the terminal host (a VM
-- of its own); the victims and the attackers share the one shard of app:processes.
--
-- main(base_seed, target, per_attacker, ops, victims, replay_seed):
-- starts `victims` victims, then attackers one after another, each with the next seed and
-- `per_attacker` sequences of `ops` operations, until `target` sequences have run in attackers
-- that finished (an attacker that ends early, say by terminating itself, or hangs counts none:
-- the count is a lower bound). After each attacker every victim is pinged and must answer in
-- time, with no problem; while an attacker runs, they are pinged every MID_ROUND as well. With
-- `replay_seed`, runs that one attacker seed, verbose, instead.
--
-- Returns a summary: its first line is
--   sequences=<n> breaches=<n> attackers=<n> ops=<n> op_errors=<n> blocked=<n> early=<n> hung=<n> findings=<n>
--   max_stall_ms=<n> pings=<n>
-- and the lines after it say what each breach, early end, hang and finding was.

local time = require("time")
local security = require("security")

local HOST = "app:processes"
local ATTACKER_TIMEOUT = "30s"
local ROUND_TIMEOUT = "15s"
-- While an attacker runs, every victim is pinged this often too (messages delivered to the
-- victims in the middle of the attack).
local MID_ROUND = "25ms"

local function main(base_seed: number, target: number, per_attacker: number, ops: number, victims_n: number, replay_seed: number?)
	-- (Numbers, or their text: `wisp exec` passes strings.)
	base_seed, target, per_attacker, ops, victims_n =
		tonumber(base_seed), tonumber(target), tonumber(per_attacker), tonumber(ops), tonumber(victims_n)
	replay_seed = tonumber(replay_seed)
	local me = process.pid()
	local events = process.events()
	local pongs = process.listen("pong")
	local details = {}
	local breaches, early, hung, findings = 0, 0, 0, 0
	local max_stall, stall_after = 0, "" -- the longest a victim's 2 ms ticker went silent, and when
	local function breach(text: string)
		breaches += 1
		details[#details + 1] = "BREACH: " .. text
		print("BREACH: " .. text)
	end

	local victims, index_of = {}, {}
	local exited = {} -- victims whose EXIT came
	for i = 1, victims_n do
		local spawner = process
			.with_context({ secret = "victim-secret-" .. i })
			:with_actor(security.new_actor("victim-" .. i, { i = i }))
		-- Odd victims have a global table of their own, even ones read the shared globals directly.
		local entry = if i % 2 == 1 then "app:victim" else "app:victim_shared"
		local pid = spawner:spawn_monitored(entry, HOST, me, i)
		victims[i] = pid
		index_of[pid] = i
	end

	local pending = {} -- events a round took that were not the victims'

	-- An EXIT event: a victim's is a breach (nothing may end a victim); others are returned.
	local function on_event(ev)
		if type(ev) ~= "table" or ev.kind ~= "pid.exit" then
			return nil
		end
		local i = index_of[ev.from]
		if i ~= nil then
			if not exited[i] then
				exited[i] = true
				local result = ev.result or {}
				breach(
					"victim " .. i .. " ended: " .. tostring(result.error or ("value " .. tostring(result.value)))
				)
			end
			return nil
		end
		return ev
	end

	-- Waits for the pongs of every live victim for round n; false if one failed.
	local function round(n: number, context: string)
		local waiting = {}
		for i, pid in victims do
			if not exited[i] then
				if n > 0 then
					process.send(pid, "side", n)
					process.send(pid, "ping", n)
				end
				waiting[i] = true
			end
		end
		local deadline = time.after(ROUND_TIMEOUT)
		while next(waiting) ~= nil do
			local r = channel.select({ pongs:case_receive(), events:case_receive(), deadline:case_receive() })
			if r.channel == deadline then
				for i in waiting do
					breach("victim " .. i .. " did not answer ping " .. n .. " within " .. ROUND_TIMEOUT .. " (" .. context .. ")")
				end
				return
			elseif r.channel == events then
				local ev = on_event(r.value)
				if ev ~= nil then
					pending[#pending + 1] = ev
				end
			else
				local pong = r.value
				local i = type(pong) == "table" and pong.i
				if not waiting[i] or pong.n ~= n then
					breach("unexpected pong " .. tostring(i) .. "/" .. tostring(type(pong) == "table" and pong.n) .. " in round " .. n)
				else
					waiting[i] = nil
					if type(pong.stall) == "number" and pong.stall > max_stall then
						max_stall, stall_after = pong.stall, context
					end
					if #pong.problems > 0 then
						breach("victim " .. i .. " at ping " .. n .. " (" .. context .. "): " .. table.concat(pong.problems, "; "))
					end
				end
			end
		end
	end

	round(0, "start")

	local sequences, attackers, total_ops, op_errors, blocked = 0, 0, 0, 0, 0
	local n = 0
	local k = 0
	-- (Bounded: if most attackers end early, the count would never be reached.)
	local max_attackers = math.ceil(target / per_attacker) * 2 + 10
	while (replay_seed == nil and sequences < target and attackers < max_attackers) or (replay_seed ~= nil and attackers < 1) do
		k += 1
		local seed = replay_seed or (base_seed * 100003 + k) % 2147483647
		attackers += 1
		print("attacker " .. attackers .. " seed=" .. seed)
		local before = breaches
		local pid = process.spawn_monitored("app:attacker", HOST, seed, per_attacker, ops, replay_seed ~= nil)
		local deadline = time.after(ATTACKER_TIMEOUT)
		local mid = time.after(MID_ROUND)
		local result = nil
		while result == nil do
			local ev = table.remove(pending, 1)
			if ev ~= nil then
				if ev.from == pid then
					result = ev.result or {}
				end
				continue
			end
			local r = channel.select({ events:case_receive(), deadline:case_receive(), mid:case_receive() })
			if r.channel == mid then
				n += 1
				round(n, "during attacker seed=" .. seed)
				-- (after a breach, no more pings until the attacker ends: one report is enough)
				mid = if breaches == before then time.after(MID_ROUND) else channel.new()
			elseif r.channel == deadline then
				hung += 1
				details[#details + 1] = "hung: attacker seed=" .. seed .. " did not end within " .. ATTACKER_TIMEOUT .. "; terminated"
				print(details[#details])
				process.terminate(pid)
				deadline = time.after(ATTACKER_TIMEOUT)
				result = { hung = true }
				-- its EXIT still comes; take it so it is not mistaken for a later attacker's
				while true do
					local r2 = channel.select({ events:case_receive(), deadline:case_receive() })
					if r2.channel == deadline then
						breach("attacker seed=" .. seed .. " did not end after terminate")
						break
					end
					local ev = on_event(r2.value)
					if ev ~= nil and ev.from == pid then
						break
					end
				end
			else
				local ev = on_event(r.value)
				if ev ~= nil and ev.from == pid then
					result = ev.result or {}
				end
			end
		end
		if not result.hung then
			local value = result.value
			if result.error ~= nil or type(value) ~= "table" then
				early += 1
				details[#details + 1] = "early: attacker seed=" .. seed .. " ended with " .. tostring(result.error or value)
				print(details[#details])
			else
				sequences += value.sequences
				total_ops += value.ops
				op_errors += value.op_errors
				blocked += value.blocked
				for _, f in value.findings do
					findings += 1
					details[#details + 1] = "FINDING (attacker seed=" .. seed .. "): " .. f
					print(details[#details])
				end
				if #value.findings > 0 then
					details[#details + 1] = "  its last operations:\n    " .. table.concat(value.last_ops, "\n    ")
				end
			end
		end
		n += 1
		round(n, "after attacker seed=" .. seed)
		if breaches > before and type(result.value) == "table" then
			details[#details + 1] = "  the last operations of attacker seed="
				.. seed
				.. ":\n    "
				.. table.concat(result.value.last_ops, "\n    ")
		end
		-- The first attacker after which anything went wrong names the failure: stop there.
		if breaches > 0 or hung > 0 or findings > 0 then
			details[#details + 1] = "stopped after attacker seed=" .. seed
			break
		end
	end

	-- The victims still answer, then stop and end normally.
	n += 1
	round(n, "final")
	local alive = 0
	for i, pid in victims do
		if not exited[i] then
			process.send(pid, "stop")
			alive += 1
		end
	end
	local deadline = time.after(ROUND_TIMEOUT)
	local stopped = 0
	while stopped < alive do
		local r = channel.select({ events:case_receive(), deadline:case_receive() })
		if r.channel == deadline then
			breach("only " .. stopped .. " of " .. alive .. " live victims ended after stop")
			break
		end
		local ev = r.value
		local i = type(ev) == "table" and ev.kind == "pid.exit" and index_of[ev.from]
		if i then
			stopped += 1
			local result = ev.result or {}
			if not exited[i] then
				exited[i] = true
				if result.error ~= nil or result.value ~= "ok " .. n then
					breach("victim " .. i .. " ended with " .. tostring(result.error or result.value) .. " after stop")
				end
			end
		end
	end

	local head = string.format(
		"sequences=%d breaches=%d attackers=%d ops=%d op_errors=%d blocked=%d early=%d hung=%d findings=%d max_stall_ms=%d pings=%d",
		sequences,
		breaches,
		attackers,
		total_ops,
		op_errors,
		blocked,
		early,
		hung,
		findings,
		max_stall,
		n * victims_n
	)
	if max_stall > 0 then
		details[#details + 1] = "longest stall of a victim's 2ms ticker: " .. max_stall .. " ms (" .. stall_after .. ")"
	end
	return head .. "\n" .. table.concat(details, "\n")
end

return { main = main }
