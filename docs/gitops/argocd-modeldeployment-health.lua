-- Argo CD health check for modeldeploy.io/ModelDeployment (kstatus conditions).
-- Healthy: Ready=True for the current generation. Degraded: Stalled=True (failed run,
-- or a pod stuck e.g. Unschedulable). Otherwise Progressing (Job pending/running, or the
-- operator has not yet observed the latest spec).
local hs = {}
local st = obj.status
if st == nil or st.observedGeneration == nil or st.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "waiting for the operator to observe generation " .. tostring(obj.metadata.generation)
  return hs
end
local ready, stalled = nil, nil
if st.conditions ~= nil then
  for _, c in ipairs(st.conditions) do
    if c.type == "Ready" then ready = c end
    if c.type == "Stalled" then stalled = c end
  end
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = (stalled.reason or "Stalled") .. ": " .. (stalled.message or "")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Succeeded"
  return hs
end
hs.status = "Progressing"
if ready ~= nil and ready.message ~= nil then
  hs.message = ready.message
else
  hs.message = "phase " .. tostring(st.phase)
end
return hs
